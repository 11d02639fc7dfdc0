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

import hashlib
import json
import math
import multiprocessing
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archsearch.checks import check_count
from archsearch.config import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.errors import InputError, RunAborted
from archsearch.evaluate.recipe import PROXY_REVISIONS, Recipe
from archsearch.profiles import Profile
from archsearch.space import SearchSpace

LOW_FRACTION = 0.5  # the region a search compares: MACs in [LOW_FRACTION * budget, budget]
MIN_CONFIGS = 4  # fewer cannot give a meaningful rank correlation
MAX_DRAWS = 20_000  # random draws tried before the region is declared too small
MAX_STALE_DRAWS = 2_000  # ... or this many draws in a row that found nothing new

Progress = Callable[[str], None]


# ---- rank correlation (written here: scipy is not a dependency) ------------------------------


def rankdata(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks; NaN if one is constant."""
    _check_pair(x, y)
    return _pearson(rankdata(x), rankdata(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)).

    A pair tied in x or in y counts neither way, and the pairs tied in x (in y) are left out
    of the x (y) factor of the denominator; NaN if one side is constant. O(n^2), which is
    nothing for the dozens of configurations a fidelity run trains.
    """
    _check_pair(x, y)
    concordant = discordant = tied_x = tied_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            tied_x += dx == 0
            tied_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    if denominator == 0:
        return math.nan
    return (concordant - discordant) / denominator


def _check_pair(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"need two sequences of one length, got {len(x)} and {len(y)}")
    if any(math.isnan(v) for v in (*x, *y)):
        raise ValueError("rank correlation of NaN values is undefined: drop them first")


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


def kendall_tau_interval(
    x: Sequence[float],
    y: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = BOOTSTRAP_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of Kendall's tau-b, resampling configurations.

    Why: a dozen configurations pin tau down only loosely (one reordered pair moves it by
    0.03, three changed values can move it by 0.4), so a report gives the range that
    resampling the same configurations yields. Seeded, so a report reprints the same interval.
    Resamples with a constant side (tau undefined) are skipped; NaN if all are.
    """
    _check_pair(x, y)
    rng = random.Random(seed)
    n = len(x)
    taus = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        tau = kendall_tau([x[i] for i in picks], [y[i] for i in picks])
        if not math.isnan(tau):
            taus.append(tau)
    if not taus:
        return math.nan, math.nan
    taus.sort()
    tail = (1 - level) / 2
    low = taus[math.floor(tail * (len(taus) - 1))]
    high = taus[math.ceil((1 - tail) * (len(taus) - 1))]
    return low, high


def correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Kendall tau-b (with its bootstrap interval) and Spearman over the pairs where both
    values are finite."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    enough = len(pairs) >= 2
    interval = kendall_tau_interval(xs, ys) if enough else (math.nan, math.nan)
    return {
        "kendall_tau": kendall_tau(xs, ys) if enough else math.nan,
        "kendall_tau_interval": list(interval),
        "spearman": spearman(xs, ys) if enough else math.nan,
        "n": len(pairs),
    }


# ---- sampling the region a search compares ---------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One sampled configuration inside the region, with its cost and family label."""

    arch: dict[str, Any]
    macs: int
    params: int
    family: str

    @property
    def config(self) -> ArchConfig:
        return ArchConfig.from_dict(self.arch)


def family(config: ArchConfig) -> str:
    """The attention / feed-forward / memory families a configuration uses, as one label."""
    layers = config.layers + config.encoder_layers
    attention = "+".join(sorted({layer.attention for layer in layers}))
    ffn = "+".join(sorted({layer.ffn for layer in layers}))
    return f"attention={attention} ffn={ffn} memory={config.memory}"


def macs_budget(profile: Profile) -> float:
    if "macs" not in profile.budgets:
        raise InputError(
            f"profile '{profile.name}' has no macs budget: fidelity samples near a MAC budget",
            key="--profile",
        )
    return profile.budgets["macs"]


def sample_region(
    space: SearchSpace,
    profile: Profile,
    recipe: Recipe,
    count: int,
    *,
    seed: int = 0,
    low_fraction: float = LOW_FRACTION,
    max_draws: int = MAX_DRAWS,
) -> list[Candidate]:
    """``count`` distinct feasible configurations with MACs in [low_fraction, 1] x budget.

    Drawn at random, then picked round-robin over families (in a random order, a random
    member each time) so that every family the region holds is represented before any is
    repeated. Raises ``InputError`` when the region holds fewer than ``count`` distinct
    configurations after ``max_draws`` draws.
    """
    from archsearch.evaluate.train import check_compatible

    budget = macs_budget(profile)
    low = low_fraction * budget
    rng = random.Random(seed)
    pool: dict[str, Candidate] = {}
    target = 8 * count  # enough to pick from without scanning the whole space
    draws = stale = 0
    while draws < max_draws and stale < MAX_STALE_DRAWS and len(pool) < target:
        draws += 1
        stale += 1
        values = space.sample(rng)
        if space.violations(values):
            continue
        try:
            config = space.to_config(values)
            check_compatible(config, recipe)
            costs = estimate_costs(config, profile)
        except InputError:
            continue
        if profile.over_budget(costs) or costs.macs < low:
            continue
        arch = config.to_dict()
        key = json.dumps(arch, sort_keys=True)
        if key not in pool:
            pool[key] = Candidate(arch, costs.macs, costs.params, family(config))
            stale = 0
    if len(pool) < count:
        raise InputError(
            f"only {len(pool)} distinct feasible configurations with MACs in "
            f"[{low:,.0f}, {budget:,.0f}] found in {draws} draws from space '{space.name}'; "
            f"ask for fewer",
            key="--configs",
        )
    by_family: dict[str, list[Candidate]] = {}
    for candidate in pool.values():
        by_family.setdefault(candidate.family, []).append(candidate)
    families = sorted(by_family)
    rng.shuffle(families)
    chosen: list[Candidate] = []
    while len(chosen) < count:
        for name in families:
            members = by_family[name]
            if members and len(chosen) < count:
                chosen.append(members.pop(rng.randrange(len(members))))
    return sorted(chosen, key=lambda c: c.macs)


# ---- running it ------------------------------------------------------------------------------


@dataclass
class FidelityResult:
    """One configuration's brief and long training and its proxies.

    ``short_curve`` / ``long_curve``: validation bpb at each of the recipe's ``eval_points``
    (``{"tokens", "val_bpb"}``), for reading how each run was still moving when it stopped
    (``long_curve``: the first reference seed's run). Empty for jobs read from a journal written
    before curves were recorded. ``long_runs``: each reference seed's bpb, in seed order;
    ``long_bpb`` is their mean and ``long_wall_s`` their total.
    """

    arch: dict[str, Any]
    family: str
    macs: int
    params: int
    short_bpb: float = math.nan
    long_bpb: float = math.nan
    short_score: float = math.nan  # the recipe's quality of the brief run (see ``brief_score``)
    short_wall_s: float = 0.0
    long_wall_s: float = 0.0
    short_curve: list[dict[str, float]] = field(default_factory=list)
    long_curve: list[dict[str, float]] = field(default_factory=list)
    long_runs: list[float] = field(default_factory=list)
    proxies: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    supernet_bpb: float = math.nan  # inherited-weights score, for a supernet recipe


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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["configs"] = len(self.results)
        return _finite_or_none(out)


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN: undefined numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _none_to_nan(value: Any) -> Any:
    """Back from JSON: the undefined numbers ``_finite_or_none`` wrote as null."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _none_to_nan(v) for k, v in value.items()}
    return value


def brief_score(result: FidelityResult, recipe: Recipe) -> float:
    """What the recipe scores a brief run by: its bpb, less ``weight`` x the blend's proxy."""
    if recipe.blend is None:
        return result.short_bpb
    return recipe.blend.score(result.short_bpb, result.proxies.get(recipe.blend.proxy, math.nan))


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
    training of the same configurations."""
    long_loss = [r.long_bpb for r in results]
    out = {}
    if supernet:
        out["supernet"] = correlation([r.supernet_bpb for r in results], long_loss)
    out["brief_training"] = correlation([r.short_score for r in results], long_loss)
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
) -> FidelityReport:
    """Sample, train at both budgets, compute proxies, correlate (module docstring).

    ``journal``: a JSON-lines file of finished jobs, read back and appended to (resume).
    ``reference_seeds``: long runs per configuration (recipe seeds counting up from the
    recipe's), ranked by their mean; the first is the same job as with one seed.
    """
    proxies = _checked_inputs(space, recipe, proxies, configs, factor, workers, reference_seeds)
    scored_by, recipe = recipe, recipe.training  # jobs are the same with or without a blend
    long_recipe = recipe.replace(token_budget=factor * recipe.token_budget)
    candidates = sample_region(space, profile, recipe, configs, seed=seed)
    results = [FidelityResult(c.arch, c.family, c.macs, c.params) for c in candidates]
    for result in results:
        result.long_runs = [math.nan] * reference_seeds
    jobs = _plan(results, recipe, long_recipe, reference_seeds, bool(proxies), factor)

    wall_start = time.perf_counter()
    cpu_total = 0.0
    say = progress or (lambda message: None)
    saved = Journal(journal) if journal is not None else None
    finished = saved.read() if saved is not None else {}
    key_of = {job: job_key(job.kind, results[job.index].arch, job.recipe, proxies) for job in jobs}
    if saved is not None:
        _rekey_old_lines(saved, finished, key_of, results, proxies)
    reused = [(job, finished[key_of[job]]) for job in jobs if key_of[job] in finished]
    todo = [job for job in jobs if key_of[job] not in finished]
    outcomes = _outcomes(reused, todo, key_of, results, proxies, workers, saved)
    for done, (job, outcome) in enumerate(outcomes, 1):
        cpu_total += outcome.pop("cpu_s", 0.0)
        shown = _take(results[job.index], job, outcome)
        again = " (from the journal)" if done <= len(reused) else ""
        say(
            f"[{done}/{len(jobs)}] {job.label:<7} #{job.index + 1} "
            f"({results[job.index].macs:,} MACs): {shown}{again}"
        )
    for result in results:
        result.long_bpb = sum(result.long_runs) / reference_seeds  # nan if any run failed
        result.short_score = brief_score(result, scored_by)
    if scored_by.supernet is not None:
        _score_by_supernet(space, scored_by, results, workers, say)
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
    )


def _score_by_supernet(
    space: SearchSpace,
    recipe: Recipe,
    results: list[FidelityResult],
    workers: int,
    say: Progress,
) -> None:
    """Each configuration's inherited-weights score from the space's supernet (trained now
    with ``workers`` threads unless cached): what a supernet search ranks candidates by."""
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    path = ensure_supernet(space, recipe, threads=workers, log=say)
    for index, result in enumerate(results, 1):
        try:
            result.supernet_bpb = score_from_file(path, ArchConfig.from_dict(result.arch), recipe)
        except (RuntimeError, ValueError) as exc:  # outside the supernet: recorded, not fatal
            result.failed.append(f"supernet: {type(exc).__name__}: {exc}")
        say(f"supernet #{index} ({result.macs:,} MACs): {result.supernet_bpb:.4f} bpb")


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
        for job, outcome in _execute(todo, results, proxies, workers):
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


def _take(result: FidelityResult, job: Job, outcome: dict[str, Any]) -> str:
    """Record a finished job on its configuration; what the progress line shows of it."""
    if "failed" in outcome:
        result.failed.append(f"{job.label}: {outcome['failed']}")
    if job.kind == "proxies":
        result.proxies = outcome.get("proxies", {})
        return " ".join(f"{k}={v:.4g}" for k, v in result.proxies.items())
    _record_run(result, job, outcome)
    if "failed" in outcome:
        return f"failed after {outcome.get('wall_s', math.nan):.1f} s: {outcome['failed']}"
    return f"{outcome['val_bpb']:.4f} bpb in {outcome['wall_s']:.1f} s"


@dataclass(frozen=True, eq=False)  # identity: a recipe holds unhashable parts
class Job:
    """One unit of work: train a configuration (``short`` or ``long``, the latter once per
    reference seed, ``replica`` counting from 0) or score its proxies."""

    kind: str
    index: int
    recipe: Recipe
    replica: int = 0

    @property
    def label(self) -> str:
        """How progress lines and failure reasons name it: ``long`` for the first seed."""
        return f"{self.kind} s{self.replica}" if self.replica else self.kind


def _plan(
    results: list[FidelityResult],
    recipe: Recipe,
    long_recipe: Recipe,
    reference_seeds: int,
    with_proxies: bool,
    factor: int,
) -> list[Job]:
    """Every job of a measurement, longest first (so the last to finish is a short one)."""
    count = range(len(results))
    jobs = [
        Job("long", i, long_recipe.replace(seed=recipe.seed + k), k)
        for k in range(reference_seeds)
        for i in count
    ]
    jobs += [Job("short", i, recipe) for i in count]
    jobs += [Job("proxies", i, recipe) for i in count] if with_proxies else []
    return sorted(jobs, key=lambda job: -_cost(job, results, factor))


def _rekey_old_lines(
    saved: Journal,
    finished: dict[str, dict[str, Any]],
    key_of: dict[Job, str],
    results: list[FidelityResult],
    proxies: Sequence[str],
) -> None:
    """Jobs a journal holds under the key from before it left the recipe's names out: read,
    and appended under the new key, so that a renamed recipe finds them too."""
    for job, key in key_of.items():
        legacy = legacy_job_key(job.kind, results[job.index].arch, job.recipe, proxies)
        if key not in finished and legacy in finished:
            finished[key] = finished[legacy]
            saved.append(key, finished[legacy])


def _record_run(result: FidelityResult, job: Job, outcome: dict[str, Any]) -> None:
    """A training job's outcome into its configuration's result."""
    bpb, wall = outcome.get("val_bpb", math.nan), outcome.get("wall_s", 0.0)
    if job.kind == "short":
        result.short_bpb, result.short_wall_s = bpb, wall
        result.short_curve = outcome.get("curve", [])
        return
    result.long_runs[job.replica] = bpb
    result.long_wall_s += wall
    if job.replica == 0:
        result.long_curve = outcome.get("curve", [])


# Recipe keys that never change a job's outcome: a recipe's names, a blend (which rescores),
# and a supernet (which scores without training; absent from journals written before it).
NOT_IN_JOBS = ("name", "description", "blend", "supernet")


def job_key(kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]) -> str:
    """What decides a job's outcome, hashed: a journal line is reused only for the same job,
    and for it whatever the recipe is called (``lm_brief_synflow`` reuses ``lm_brief``'s)."""
    settings = recipe.to_dict()
    for key in NOT_IN_JOBS:
        del settings[key]
    return _hashed(kind, arch, settings, proxies)


def legacy_job_key(kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]) -> str:
    """The key journals were written with before ``job_key`` left the recipe's names out (and
    before blends): read, so that their jobs are reused, never written."""
    settings = recipe.training.to_dict()
    del settings["blend"]
    settings.pop("supernet", None)
    return _hashed(kind, arch, settings, proxies)


def _revised(proxy: str) -> str:
    """``synflow@2`` for a proxy past its first definition, the bare name before that."""
    revision = PROXY_REVISIONS.get(proxy, 1)
    return proxy if revision == 1 else f"{proxy}@{revision}"


def _hashed(kind: str, arch: dict[str, Any], settings: dict[str, Any], proxies: Sequence[str]):
    what = {"kind": kind, "arch": arch, "recipe": settings}
    if kind == "proxies":  # a revised proxy is another job (revision 1 keeps its old key)
        what["proxies"] = [_revised(name) for name in proxies]
    text = json.dumps(what, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Journal:
    """Finished fidelity jobs, one JSON line each, appended as they finish (see module doc)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]]:
        """key -> outcome of every complete line; a line cut short by a crash is skipped."""
        if not self.path.exists():
            return {}
        found: dict[str, dict[str, Any]] = {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the journal {self.path}: {exc}", key="--save") from None
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                found[entry["key"]] = _none_to_nan(dict(entry["outcome"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def append(self, key: str, outcome: dict[str, Any]) -> None:
        line = json.dumps({"key": key, "outcome": _finite_or_none(outcome)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            if handle.tell() and not _ends_with_newline(self.path):
                line = "\n" + line  # after a line cut short by a crash: start a new line
            handle.write((line + "\n").encode("utf-8"))
            handle.flush()


def _cost(job: Job, results: list[FidelityResult], factor: int) -> float:
    weight = {"long": factor, "short": 1, "proxies": 0.1}[job.kind]
    return weight * results[job.index].macs


def _execute(
    jobs: list[Job], results: list[FidelityResult], proxies: list[str], workers: int
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Yield (job, outcome) as jobs finish: in this process, or in ``workers`` spawned
    processes of one torch thread each."""
    calls = [(job.kind, results[job.index].arch, job.recipe, proxies) for job in jobs]
    if workers == 1:
        for job, call in zip(jobs, calls, strict=True):
            yield job, run_job(*call)
        return
    context = multiprocessing.get_context("spawn")  # fork after torch threads start is unsafe
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
    ) as pool:
        futures: dict[Future, Job] = {
            pool.submit(run_job, *call): job for job, call in zip(jobs, calls, strict=True)
        }
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:  # the pool ends the other workers and fails every job left
                raise RunAborted(
                    "a fidelity worker process died (killed, perhaps for memory) while jobs "
                    "were running"
                ) from None
            yield futures[future], outcome


def _start_worker(parent_pid: int) -> None:
    """One torch thread per worker; the worker ends if the parent does (``workers.py``)."""
    import torch

    from archsearch.evaluate.workers import die_with_parent

    die_with_parent(parent_pid)
    torch.set_num_threads(1)


def run_job(
    kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]
) -> dict[str, Any]:
    """One unit of work (top level, so a spawned worker can run it): train or score proxies.

    A candidate that fails is a result (``failed``), not a crash of the whole report.
    """
    import torch

    from archsearch.evaluate import CandidateFailed

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    config = ArchConfig.from_dict(arch)
    try:
        if kind == "proxies":
            from archsearch.evaluate.proxies import PROXIES

            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                scores = {name: PROXIES[name](config, recipe) for name in proxies}
            finally:
                torch.set_num_threads(previous)
            outcome: dict[str, Any] = {"proxies": scores}
        else:
            from archsearch.evaluate.train import evaluate

            result = evaluate(config, recipe, threads=1)
            curve = [{"tokens": p["tokens"], "val_bpb": p["val_bpb"]} for p in result.curve]
            outcome = {"val_bpb": result.val_bpb, "wall_s": result.wall_s, "curve": curve}
    except CandidateFailed as exc:
        outcome = {"failed": exc.reason}
    except (RuntimeError, MemoryError, ValueError) as exc:
        outcome = {"failed": f"{type(exc).__name__}: {exc}"}
    if "failed" in outcome:  # a trained result carries its own wall time, imports excluded
        outcome["wall_s"] = time.perf_counter() - wall_start
    outcome["cpu_s"] = time.process_time() - cpu_start
    return outcome
