"""Proxy fidelity: does brief training rank candidates the way longer training does?

The whole search rests on that claim, so it is measured where a search needs it: on K feasible
configurations whose MACs lie between half and all of the profile's budget (candidates of
similar cost, which are hard to rank), drawn across the space's attention / feed-forward /
memory families. Each is trained at the recipe's token budget and at ``factor`` times it (the
reference), every zero-cost proxy is computed, and the report gives Kendall's tau-b and
Spearman's rho of each against the reference ranking.

Every correlation is signed so that +1 means "ranks exactly like long training": brief
training's validation loss is compared with the long run's loss (both lower-is-better), and a
proxy (higher-is-better) with the negated long loss.

Long runs are themselves noisy: a different seed reorders configurations whose losses lie
close together. With ``reference_seeds`` N > 1 each reference is trained N times (recipe seeds
``seed .. seed + N - 1``), ranked by the mean loss, and the report adds how well the first two
seeds' references agree with each other (``reference_repeat``): no brief recipe can be expected
to agree with one reference run better than two reference runs agree with each other.

A recipe that blends a proxy into its score (``blend``) is measured by that score: the brief
runs' ``val_bpb - weight * proxy`` against the references' ``val_bpb``; ``brief_val_bpb`` gives
the brief runs' bpb alone beside it. Its runs are those of the recipe without the blend.

A measurement takes tens of minutes, so it can keep a journal (``--save``): one JSON line per
finished job, keyed by what decides its outcome (the job kind, the architecture, the recipe's
settings but not its name, and the proxies). Run the same command with the same journal again
and finished jobs are read back instead of trained again: an interrupted measurement resumes, a
finished one re-prints, and another recipe that trains the same way reuses them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from archsearch.checks import check_count
from archsearch.config import ArchConfig
from archsearch.errors import InputError, RunAborted
from archsearch.evaluate.recipe import Recipe
from archsearch.fidelity.jobs import FidelityResult, Job, plan, take
from archsearch.fidelity.journal import Journal, finite_or_none, job_key, rekey_old_lines
from archsearch.fidelity.pool import execute
from archsearch.fidelity.ranks import correlation
from archsearch.fidelity.region import LOW_FRACTION, MIN_CONFIGS, macs_budget, sample_region
from archsearch.profiles import Profile
from archsearch.space import SearchSpace

Progress = Callable[[str], None]


@dataclass
class FidelityReport:
    """What ``archsearch fidelity`` prints (``to_dict`` is its ``--json``)."""

    space: str
    profile: str
    evaluator: str
    factor: int
    seed: int
    workers: int
    macs_budget: float
    macs_low: float
    short_tokens: int
    long_tokens: int
    results: list[FidelityResult]
    correlations: dict[str, dict[str, Any]]
    wall_s: float
    cpu_s: float
    recipe: dict[str, Any]
    reused_jobs: int = 0  # read back from the journal instead of run (their CPU is in cpu_s)
    reference_seeds: int = 1  # long runs per configuration, averaged
    sample_space: str | None = None  # the configurations were drawn from this space instead
    supernet_seeds: int = 0  # supernet trainings that scored them (0: not a supernet recipe)
    brief_seeds: int = 1  # brief runs per configuration, each ranked on its own and averaged

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["configs"] = len(self.results)
        return finite_or_none(out)


def brief_score(result: FidelityResult, recipe: Recipe, bpb: float | None = None) -> float:
    """What the recipe scores a brief run by: its bpb (the first brief seed's unless ``bpb``),
    less ``weight`` x the blend's proxy."""
    bpb = result.short_bpb if bpb is None else bpb
    if recipe.blend is None:
        return bpb
    return recipe.blend.score(bpb, result.proxies.get(recipe.blend.proxy, math.nan))


def correlations(
    results: Sequence[FidelityResult],
    proxies: Sequence[str],
    *,
    blended: bool = False,
    supernet: bool = False,
) -> dict[str, Any]:
    """Signed so that +1 means the same ranking as the long runs (see the module docstring);
    with two or more reference seeds, ``reference_repeat`` is the first two seeds' agreement.
    ``blended``: the recipe's score is not the bpb alone, which ``brief_val_bpb`` then gives.
    ``supernet``: the recipe scores by inherited weights (``supernet``), beside the brief
    training of the same configurations; with several supernet trainings, also each later
    one's (``supernet_s1`` ...) and their mean score's (``supernet_mean``), raw and less
    offsets (``supernet_offsets_s1`` ..., ``supernet_offsets_mean``)."""
    long_loss = [r.long_bpb for r in results]
    out = {}
    if supernet:
        out["supernet"] = correlation([r.supernet_bpb for r in results], long_loss)
        if any(math.isfinite(r.finetuned_bpb) for r in results):
            out["supernet_finetuned"] = correlation([r.finetuned_bpb for r in results], long_loss)
        if any(math.isfinite(r.offset_bpb) for r in results):
            out["supernet_offsets"] = correlation([r.offset_bpb for r in results], long_loss)
        for name, runs in (
            ("supernet", [r.supernet_runs for r in results]),
            ("supernet_offsets", [r.offset_runs for r in results]),
        ):
            if any(math.isfinite(v) for run in runs for v in run):
                out.update(_per_seed(name, runs, long_loss))
    out["brief_training"] = correlation([r.short_score for r in results], long_loss)
    out.update(_per_seed("brief_training", [r.short_scores for r in results], long_loss))
    if blended:
        out["brief_val_bpb"] = correlation([r.short_bpb for r in results], long_loss)
    if results and all(len(r.long_runs) >= 2 for r in results):
        out["reference_repeat"] = correlation(
            [r.long_runs[0] for r in results], [r.long_runs[1] for r in results]
        )
    negated = [-v for v in long_loss]
    for name in proxies:
        out[f"proxy:{name}"] = correlation(
            [r.proxies.get(name, math.nan) for r in results], negated
        )
    return out


def _per_seed(name: str, runs: list[list[float]], long_loss: list[float]) -> dict[str, Any]:
    """For scores measured over several seeds (each configuration's ``runs``, in seed order):
    ``<name>_s1`` ... for each seed after the first, and ``<name>_mean`` for their mean score
    (an ensemble of the seeds); empty with one seed."""
    count = min((len(run) for run in runs), default=0)
    if count < 2:
        return {}
    out = {
        f"{name}_s{seed}": correlation([run[seed] for run in runs], long_loss)
        for seed in range(1, count)
    }
    out[f"{name}_mean"] = correlation([sum(run) / len(run) for run in runs], long_loss)
    return out


def run_fidelity(
    space: SearchSpace,
    profile: Profile,
    recipe: Recipe,
    *,
    configs: int = 12,
    factor: int = 8,
    workers: int = 1,
    seed: int = 0,
    proxies: Sequence[str] | None = None,
    progress: Progress | None = None,
    journal: Path | None = None,
    reference_seeds: int = 1,
    sample_space: SearchSpace | None = None,
    supernet_seeds: int = 1,
    brief_seeds: int = 1,
) -> FidelityReport:
    """Sample, train at both budgets, compute proxies, correlate (module docstring).

    ``journal``: a JSON-lines file of finished jobs, read back and appended to (resume).
    ``reference_seeds``: long runs per configuration (recipe seeds counting up from the
    recipe's), ranked by their mean; the first is the same job as with one seed.
    ``sample_space``: draw the configurations from this space instead of ``space`` (each
    must be one of ``space``'s): a journal's references drawn before ``space`` grew stay its
    references, and a supernet recipe is still trained over ``space``.
    ``brief_seeds``: brief runs per configuration (recipe seeds counting up), each ranked
    on its own beside the first and by their mean score: one seed's tau is one draw of brief
    training's noise.
    ``supernet_seeds``: a supernet recipe's supernet trained this many times (recipe seeds
    counting up), each scoring every configuration: one training's tau is one draw of its
    training noise.
    """
    proxies = _checked_inputs(space, recipe, proxies, configs, factor, workers, reference_seeds)
    check_count("--supernet-seeds", supernet_seeds)
    check_count("--brief-seeds", brief_seeds)
    if supernet_seeds > 1 and recipe.supernet is None:
        raise InputError(
            f"evaluator '{recipe.name}' has no supernet to train several times",
            key="--supernet-seeds",
        )
    scored_by, recipe = recipe, recipe.training  # jobs are the same with or without a blend
    long_recipe = recipe.replace(token_budget=factor * recipe.token_budget)
    candidates = sample_region(sample_space or space, profile, recipe, configs, seed=seed)
    results = [FidelityResult(c.arch, c.family, c.macs, c.params) for c in candidates]
    for result in results:
        result.long_runs = [math.nan] * reference_seeds
        result.short_runs = [math.nan] * brief_seeds
    jobs = plan(results, recipe, long_recipe, reference_seeds, bool(proxies), factor, brief_seeds)

    wall_start = time.perf_counter()
    cpu_total = 0.0
    say = progress or (lambda message: None)
    saved = Journal(journal) if journal is not None else None
    finished = saved.read() if saved is not None else {}
    key_of = {job: job_key(job.kind, results[job.index].arch, job.recipe, proxies) for job in jobs}
    if saved is not None:
        rekey_old_lines(saved, finished, key_of, results, proxies)
    reused = [(job, finished[key_of[job]]) for job in jobs if key_of[job] in finished]
    todo = [job for job in jobs if key_of[job] not in finished]
    outcomes = _outcomes(reused, todo, key_of, results, proxies, workers, saved)
    for done, (job, outcome) in enumerate(outcomes, 1):
        cpu_total += outcome.pop("cpu_s", 0.0)
        shown = take(results[job.index], job, outcome)
        again = " (from the journal)" if done <= len(reused) else ""
        say(
            f"[{done}/{len(jobs)}] {job.label:<7} #{job.index + 1} "
            f"({results[job.index].macs:,} MACs): {shown}{again}"
        )
    for result in results:
        result.long_bpb = sum(result.long_runs) / reference_seeds  # nan if any run failed
        result.short_score = brief_score(result, scored_by)
        result.short_scores = [brief_score(result, scored_by, bpb) for bpb in result.short_runs]
    if scored_by.supernet is not None:
        _score_by_supernet(space, profile, scored_by, results, workers, say, supernet_seeds)
    return FidelityReport(
        space=space.name,
        profile=profile.name,
        evaluator=scored_by.name,
        factor=factor,
        seed=seed,
        workers=workers,
        macs_budget=macs_budget(profile),
        macs_low=LOW_FRACTION * macs_budget(profile),
        short_tokens=recipe.token_budget,
        long_tokens=long_recipe.token_budget,
        results=results,
        correlations=correlations(
            results,
            proxies,
            blended=scored_by.blend is not None,
            supernet=scored_by.supernet is not None,
        ),
        wall_s=time.perf_counter() - wall_start,
        cpu_s=cpu_total,
        recipe=scored_by.to_dict(),
        reused_jobs=len(reused),
        reference_seeds=reference_seeds,
        sample_space=sample_space.name if sample_space is not None else None,
        supernet_seeds=supernet_seeds if scored_by.supernet is not None else 0,
        brief_seeds=brief_seeds,
    )


def _score_by_supernet(
    space: SearchSpace,
    profile: Profile,
    recipe: Recipe,
    results: list[FidelityResult],
    workers: int,
    say: Progress,
    seeds: int = 1,
) -> None:
    """Each configuration's inherited-weights score from the space's supernet (trained now
    with ``workers`` threads unless cached): what a supernet search ranks candidates by; and,
    when the recipe fine-tunes (``finetune_steps``), its score after that, which a search's
    shortlist is re-ranked by; with ``offsets``, the score less its family offsets, which a
    search ranks by then (measured on the profile's first design baseline, as ``run`` does).

    With ``seeds`` > 1 the supernet is trained that many times, from recipe seeds counting up
    (each cached as any supernet is), and each training scores every configuration, raw and
    less its own offsets; all are scored on the first recipe's validation bytes, so the
    trainings differ in their weights alone. Only the first is fine-tuned (seconds each)."""
    from archsearch.search.baselines import reference_design
    from archsearch.supernet.finetune import finetuned_from_file
    from archsearch.supernet.offsets import measure_offsets
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    assert recipe.supernet is not None
    reference = reference_design(space, profile) if recipe.supernet.offsets else None
    for seed in range(seeds):
        trained = recipe.replace(seed=recipe.seed + seed)
        if seeds > 1:
            say(f"supernet training {seed + 1} of {seeds} (recipe seed {trained.seed})")
        path = ensure_supernet(space, trained, threads=workers, log=say)
        offsets = None
        if recipe.supernet.offsets:
            offsets = measure_offsets(space, path, recipe, reference, workers=workers, say=say)
        for index, result in enumerate(results, 1):
            config = ArchConfig.from_dict(result.arch)
            raw = adjusted = tuned = math.nan
            try:
                raw = score_from_file(path, config, recipe)
                if offsets is not None:
                    adjusted = raw - offsets.of(config)
                if seed == 0 and recipe.supernet.finetune_steps:
                    tuned = finetuned_from_file(path, config, recipe)
            except (RuntimeError, ValueError) as exc:  # outside the supernet: recorded, not fatal
                result.failed.append(f"supernet: {type(exc).__name__}: {exc}")
            result.supernet_runs.append(raw)
            result.offset_runs.append(adjusted)
            if seed == 0:
                result.supernet_bpb, result.offset_bpb, result.finetuned_bpb = raw, adjusted, tuned
            shown = f", fine-tuned {tuned:.4f}" if math.isfinite(tuned) else ""
            label = f"supernet s{seed}" if seeds > 1 else "supernet"
            say(f"{label} #{index} ({result.macs:,} MACs): {raw:.4f} bpb{shown}")


def _checked_inputs(
    space: SearchSpace,
    recipe: Recipe,
    proxies: Sequence[str] | None,
    configs: int,
    factor: int,
    workers: int,
    reference_seeds: int,
) -> list[str]:
    """Refuse what cannot be measured (one line each); the proxies to compute, the blend's
    own among them (the recipe's score needs it)."""
    from archsearch.evaluate.proxies import PROXIES

    proxies = list(PROXIES) if proxies is None else list(proxies)
    for name in proxies:
        if name not in PROXIES:
            raise InputError(
                f"unknown proxy {name!r} (known: {', '.join(PROXIES)})", key="--proxies"
            )
    check_count("--configs", configs, minimum=MIN_CONFIGS)
    check_count("--factor", factor, minimum=2)
    check_count("--workers", workers)
    check_count("--reference-seeds", reference_seeds)
    recipe.check_space(space)
    if recipe.scores_by_proxy:
        raise InputError(
            f"evaluator '{recipe.name}' scores by the {recipe.proxy} proxy, without training; "
            "fidelity needs a training recipe (it reports every proxy beside it)",
            key="--evaluator",
        )
    if recipe.supernet is not None:
        from archsearch.supernet.sharing import check_shareable

        check_shareable(space)
    if recipe.blend is not None and recipe.blend.proxy not in proxies:
        proxies.append(recipe.blend.proxy)
    return proxies


def _outcomes(
    reused: list[tuple[Job, dict[str, Any]]],
    todo: list[Job],
    key_of: dict[Job, str],
    results: list[FidelityResult],
    proxies: list[str],
    workers: int,
    saved: Journal | None,
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """The journal's outcomes first, then each new job's as it finishes (journaled at once,
    so an interrupted measurement loses only the jobs that were running)."""
    yield from ((job, dict(outcome)) for job, outcome in reused)
    try:
        for job, outcome in execute(todo, results, proxies, workers):
            if saved is not None:
                saved.append(key_of[job], outcome)
            yield job, outcome
    except RunAborted as exc:
        kept = (
            f"the jobs that finished are in {saved.path}: the same command resumes"
            if saved is not None
            else "nothing was kept: --save JOURNAL keeps finished jobs for a resume"
        )
        raise RunAborted(f"{exc}; {kept}") from None
