"""``archsearch run``: wire the space, profile and evaluator into Optuna + Ray Tune and go.

Only this process writes the study. Workers receive a candidate's flat description and report
metrics back through Tune; the searcher records everything in the study. Running the same
command again continues the study: trials interrupted last time are queued again, the
reference architectures are queued once per study, and the search stops when the study holds
``--trials`` trained candidates (or the time, or a grid, runs out).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from archsearch import __version__
from archsearch.errors import InputError
from archsearch.search import trial_attrs as attrs
from archsearch.search.inputs import Inputs, SearchOptions, default_study_name, load_inputs
from archsearch.search.quality import DEFAULT_QUALITY, MINIMIZE, Quality, quality_of
from archsearch.search.quality import STUDY_ATTR as QUALITY_ATTR
from archsearch.search.storage import open_storage, run_folder


@dataclass
class SearchSummary:
    study_name: str
    storage: str
    trained: int
    rejected_infeasible: int
    rejected_invalid: int
    wall_s: float
    exhausted: bool
    ended: str = "done"  # done | exhausted | timeout | interrupted
    interrupted_trials: int = 0  # closed and queued again by this run
    baselines: list[str] = field(default_factory=list)  # queued by this run
    quality: Quality = DEFAULT_QUALITY  # what the candidates were scored on

    @property
    def interrupted(self) -> bool:
        return self.ended == "interrupted"


def run_search(
    options: SearchOptions,
    *,
    console: Any = None,
    inputs: Inputs | None = None,
    queue: Callable[[optuna.Study], Any] | None = None,
) -> SearchSummary:
    """Run (or continue) a study until it holds ``options.trials`` trained candidates.

    ``inputs``: ``load_inputs(options)`` when the caller has checked them already. ``queue``
    enqueues chosen candidates after the baselines (a supernet search's finalists).
    """
    from archsearch.search.accounting import RunLedger
    from archsearch.search.baselines import design_baselines, enqueue_baselines
    from archsearch.search.progress import SearchProgress
    from archsearch.search.resume import recover_interrupted, trained_count
    from archsearch.search.samplers import make_sampler
    from archsearch.search.searcher import ArchSearcher

    started = time.perf_counter()
    inputs = inputs or load_inputs(options)
    study_name = options.study or default_study_name(inputs)
    storage = open_storage(options.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    quality = quality_of(inputs.recipe)
    searcher = ArchSearcher(
        inputs.space,
        inputs.profile,
        sampler=make_sampler(options.sampler, options.seed, inputs.space),
        storage=storage,
        study_name=study_name,
        quality=quality,
    )
    study = searcher.study
    searcher.data_fingerprint = _describe_study(study, inputs, options)
    recovered = recover_interrupted(study)
    queued = enqueue_baselines(study, lambda: design_baselines(inputs.space, inputs.profile))
    if queue is not None:
        queue(study)
    ledger = RunLedger(
        study,
        sampler=options.sampler,
        scheduler=options.scheduler,
        workers=options.workers,
        target=options.trials,
    )
    done_before = trained_count(study)
    progress = SearchProgress(searcher, total=options.trials, done=done_before, ledger=ledger)
    if console is not None:
        progress.console = console
    if not quality.trains:
        progress.console.print(f"quality: {quality.describe()}; candidates are not trained")
    if recovered:
        progress.console.print(
            f"resumed: {recovered} interrupted trial(s) marked failed and queued again"
        )
    if queued:
        names = ", ".join(f"{b.name} ({b.macs / 1e6:.3g}M MACs)" for b in queued)
        progress.console.print(f"baselines queued first: {names}")

    ended, cut = "done", 0
    try:
        if options.trials > done_before:
            ended = _tune(searcher, inputs, options, study_name, progress, ledger, started)
            for _ in range(LOST_ROUNDS):  # trials lost with a worker node: their retries now
                short = trained_count(study) < options.trials and not searcher.exhausted
                if ended != "done" or not searcher.lost or not short:
                    break
                progress.console.print(
                    f"{searcher.lost} trial(s) lost with their worker (a Ray node or process "
                    "died): running them again"
                )
                searcher.lost = 0
                progress.done = trained_count(study)
                ended = _tune(searcher, inputs, options, study_name, progress, ledger, started)
    except KeyboardInterrupt:
        ended = "interrupted"
        raise
    except BaseException:
        ended = "error"
        raise
    finally:
        reason = CUT_REASONS.get(ended, CUT_REASONS["done"])
        if ended == "timeout":
            reason = reason.format(timeout=options.timeout)
        cut = searcher.close_open_trials(reason)
        if cut and ended == "done":
            ended = "interrupted"  # Tune gave up on trials it had started: never call it done
        trained = trained_count(study)
        if ended == "done" and searcher.exhausted and trained < options.trials:
            ended = "exhausted"
        ledger.update(status=ended, trained=trained - done_before)
    if ended == "done" and inputs.profile.latency_here:  # a device's latency is timed there
        from archsearch.search.remeasure import remeasure_front

        progress.console.print("timing the Pareto candidates alone (predicted vs measured)")
        for number, figure in remeasure_front(study, inputs.profile).items():
            progress.console.print(
                f"  trial {number}: predicted {figure['predicted_ms']:.2f} ms, "
                f"measured {figure['measured_ms']:.2f} ms ({figure['clock']} clock)"
            )
    return SearchSummary(
        study_name=study_name,
        storage=options.storage,
        trained=trained,
        rejected_infeasible=_count(study, attrs.INFEASIBLE),
        rejected_invalid=_count(study, attrs.INVALID),
        wall_s=time.perf_counter() - started,
        exhausted=searcher.exhausted,
        ended=ended,
        interrupted_trials=cut,
        baselines=[b.name for b in queued],
        quality=quality,
    )


# Further Tune runs for trials whose worker died (each is retried once, so this only bounds a
# cluster that keeps losing nodes).
LOST_ROUNDS = 5

CUT_REASONS = {
    "timeout": "--timeout {timeout:g} s ended the search while this trial ran",
    "interrupted": "the search was interrupted (Ctrl-C) while this trial ran",
    "error": "the driver failed while this trial ran",
    "done": "the search ended while this trial ran",
}


def _tune(
    searcher: Any,
    inputs: Inputs,
    options: SearchOptions,
    study_name: str,
    progress: Any,
    ledger: Any,
    started: float,
) -> str:
    """Run the remaining trials through Ray Tune; returns why it ended (done/timeout/...)."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from archsearch.search.ray_session import cluster_address, ensure_ray, verbose
    from archsearch.search.resume import trained_count
    from archsearch.search.schedulers import make_scheduler
    from archsearch.search.stopping import GracefulInterrupt, SearchStopper
    from archsearch.search.trainable import train_candidate

    # Before Ray starts: the supernet trains with every core the run was given.
    supernet = _ensure_supernet(searcher.study, inputs, options, progress.console)
    offsets = _family_offsets(searcher.study, inputs, options, supernet, progress.console)
    ensure_ray(options.address, num_cpus=options.workers)
    ledger.update(ray_address=cluster_address())
    # Tune logs a trial whose worker died as an ERROR with Ray's traceback; archsearch says it
    # in its own words (searcher.py: the trial is lost and queued again; progress.py: worker
    # error), so Tune's report is shown with --verbose only.
    logging.getLogger("ray.tune").setLevel(logging.ERROR if verbose() else logging.CRITICAL)
    deadline = None if options.timeout is None else started + options.timeout
    stopper = SearchStopper(deadline)
    trainable = tune.with_resources(
        tune.with_parameters(
            train_candidate,
            recipe=inputs.recipe,
            threads=1,
            supernet=supernet,
            offsets=offsets,
        ),
        {"cpu": 1},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=options.workers),
            scheduler=make_scheduler(options.scheduler, inputs.recipe),
            num_samples=options.trials - trained_count(searcher.study),
            reuse_actors=True,  # one worker process per slot: torch is imported once
        ),
        run_config=tune.RunConfig(
            # A fresh experiment folder per run: a rerun never picks up a dead run's state.
            name=f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=str(run_folder(options.storage) / "ray"),
            verbose=0,
            stop=stopper,
            callbacks=[progress],
        ),
    )
    with GracefulInterrupt(stopper, progress.console), progress:
        tuner.fit()
    return stopper.reason or "done"


def _describe_study(study: optuna.Study, inputs: Inputs, options: SearchOptions) -> str:
    """Store what the study is, once: later runs must not silently mix other settings in.

    Returns the data fingerprint every trained candidate must match.
    """
    from archsearch.evaluate.data import data_fingerprint

    fingerprint = data_fingerprint(inputs.recipe)  # what every worker's result must match
    quality = quality_of(inputs.recipe)
    description = {
        "space": inputs.space.name,
        "space_source": str(inputs.space.source),
        "profile": inputs.profile.to_dict(),
        "evaluator": inputs.recipe.to_dict(),
        "data_fingerprint": fingerprint,
        QUALITY_ATTR: quality.to_dict(),
        "objectives": [quality.name, *inputs.profile.objectives],
        "constraint_names": list(inputs.profile.budgets),
    }
    existing = dict(study.user_attrs)
    if "data_fingerprint" in existing:
        _check_quality(study, existing, quality, len(inputs.profile.objectives))
        for key in _differences(existing, description):
            raise InputError(
                f"study '{study.study_name}' was run with another {key}; "
                "use --study to start a new study",
                key="--study",
            )
        if QUALITY_ATTR not in existing:  # a study from before the record: now it has one
            study.set_user_attr(QUALITY_ATTR, quality.to_dict())
        _name_objectives(study, description["objectives"])
        return fingerprint
    for key, value in description.items():
        study.set_user_attr(key, value)
    _name_objectives(study, description["objectives"])
    study.set_user_attr("archsearch_version", __version__)
    study.set_user_attr("seed", options.seed)
    study.set_user_attr("sampler", options.sampler)
    return fingerprint


def _name_objectives(study: optuna.Study, names: list[str]) -> None:
    """Optuna's metric names, which optuna-dashboard shows on its axes and tables (instead of
    "Objective 0"); set once. Experimental in Optuna 5, hence the silenced warning."""
    if study.metric_names is not None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(names))


def _check_quality(
    study: optuna.Study, stored: dict[str, Any], quality: Quality, costs: int
) -> None:
    """A study keeps one quality objective and direction: a study that measured val_bpb cannot
    continue with a proxy (or another proxy), and Optuna's directions must say the same."""
    # older studies recorded none: they measured the default (val_bpb, minimised)
    before = _plain(stored.get(QUALITY_ATTR, DEFAULT_QUALITY.to_dict()))
    directions = [direction.name.lower() for direction in study.directions]
    wanted = [quality.direction] + [MINIMIZE] * costs
    if before != _plain(quality.to_dict()) or directions != wanted:
        was = f"{before.get('name')} ({before.get('direction')})"
        if directions != wanted:
            was += f", Optuna directions {', '.join(directions)}"
        raise InputError(
            f"study '{study.study_name}' measured {was}; this evaluator measures "
            f"{quality.name} ({quality.direction}): use --study to start a new study",
            key="--study",
        )


def _differences(stored: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed since the study began that makes its results incomparable.

    Budgets and the counting convention (constraint values are relative to the budgets), and
    the evaluator's settings (quality is measured by them); keys a newer archsearch added to
    the evaluator are not differences.
    """
    found = [
        key
        for key in ("data_fingerprint", "objectives", "constraint_names")
        if stored.get(key) != now[key]
    ]
    stored_profile, profile = _plain(stored.get("profile", {})), _plain(now["profile"])
    for key in ("budgets", "convention"):
        if key in stored_profile and stored_profile[key] != profile[key]:
            found.append(f"profile {key}")
    stored_recipe, recipe = _plain(stored.get("evaluator", {})), _plain(now["evaluator"])
    for key, value in stored_recipe.items():
        if key not in ("name", "description") and key in recipe and recipe[key] != value:
            found.append(f"evaluator {key}")
    return found


def _plain(value: Any) -> Any:
    """As stored in the study (JSON), so tuples and lists compare equal."""
    return json.loads(json.dumps(value))


def _count(study: optuna.Study, status: str) -> int:
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get(attrs.STATUS) == status
    )


def _ensure_supernet(study: Any, inputs: Inputs, options: Any, console: Any) -> str | None:
    """For a supernet recipe: the trained supernet's path (trained now with every worker's
    thread when the cache has none), recorded in the study attribute ``supernet``."""
    if inputs.recipe.supernet is None:
        return None
    from archsearch.supernet.store import ensure_supernet, read_record

    console.print(f"supernet: training or reusing the supernet of space '{inputs.space.name}'")
    with _SupernetProgress(console) as progress:
        path = ensure_supernet(
            inputs.space,
            inputs.recipe,
            threads=options.workers,
            progress=progress.update,
            log=console.print,
        )
    record = read_record(path)  # the weights are the workers' to load
    study.set_user_attr(
        "supernet",
        {
            "path": str(path),
            "steps": record["step"],
            "tokens": record["tokens"],
            "wall_s": record.get("wall_s"),
            "cpu_s": record.get("cpu_s"),
        },
    )
    return str(path)


def _family_offsets(
    study: Any, inputs: Inputs, options: Any, supernet: str | None, console: Any
) -> dict[str, Any] | None:
    """For a supernet recipe with ``offsets``: each layer kind's offset on the run's supernet
    (measured with every worker when its cache has none), recorded in the study attribute
    ``supernet_offsets``; the reference is the profile's first design baseline."""
    settings = inputs.recipe.supernet
    if supernet is None or settings is None or not settings.offsets:
        return None
    from pathlib import Path

    from archsearch.search.baselines import reference_design
    from archsearch.supernet.offsets import measure_offsets

    found = measure_offsets(
        inputs.space,
        Path(supernet),
        inputs.recipe,
        reference_design(inputs.space, inputs.profile),
        workers=options.workers,
        say=console.print,
    )
    shown = ", ".join(f"{k} {v:+.3f}" for k, v in sorted(found.offsets.items()) if v)
    console.print(f"offsets (bpb taken off per layer of the kind): {shown}")
    study.set_user_attr("supernet_offsets", found.offsets)
    return found.to_dict()


class _SupernetProgress:
    """A progress bar for the supernet's training on a terminal; a line every 10 s elsewhere
    (a log file stays readable)."""

    def __init__(self, console: Any):
        self.console, self.last, self.bar, self.task = console, 0.0, None, None

    def __enter__(self) -> _SupernetProgress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("supernet"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps, largest {task.fields[bpb]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.bar.__enter__()
        return self

    def update(self, step: int, steps: int, loss: float) -> None:
        bpb = f"{loss / math.log(2):.3f} bits per byte"
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("supernet", total=steps, completed=step, bpb=bpb)
            self.bar.update(self.task, completed=step, bpb=bpb)
            return
        now = time.perf_counter()
        if now - self.last > 10 or step == steps:
            self.last = now
            self.console.print(f"supernet: step {step}/{steps}, largest's loss {bpb}")

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
