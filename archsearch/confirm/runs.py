"""Seeded retraining runs: plan them, run them on Ray workers, record them in a companion study.

Every run is one trial of the companion study ``<study>.confirm`` in the same storage (value:
the run's final validation bpb; user attributes: the source trial, seed, factor, curve, arch,
MACs, wall time), so optuna-dashboard shows the runs beside the study they confirm. The study is
the record a rerun resumes from: a run COMPLETE there for (source trial, seed, factor) is never
trained again; a RUNNING one was left by a confirm that died, and is closed as FAIL
(``interrupted``) and trained again, as is any failed run. Only this (driver) process writes
the storage; workers get an architecture and a recipe and return numbers.

Training reuses ``archsearch train``'s resumable loop (``train_resumable``) with the seed's data
order, checkpointing into a folder per run beside the study: a run killed half-way continues
from its last checkpoint when the worker finds it, with the result of an uninterrupted run.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.confirm.selection import Model
from archsearch.evaluate.recipe import Recipe
from archsearch.search import trial_attrs as attrs
from archsearch.search.internals import trial_id

SUFFIX = ".confirm"
MIN_EVAL_POINTS = 8  # points on each run's validation curve, where the run has the steps
INTERRUPTED = "a confirm was interrupted while this run trained"
# what a finished run's result carries that its trial keeps as user attributes
RESULT_ATTRS = (
    attrs.CURVE,
    attrs.WALL_S,
    attrs.STEPS,
    attrs.TOKENS,
    attrs.DATA_FINGERPRINT,
    attrs.RESUMED,
)


def companion_name(study_name: str) -> str:
    return f"{study_name}{SUFFIX}"


def open_companion(storage: Any, study_name: str) -> optuna.Study:
    """The companion study of ``study_name`` (created on first use)."""
    companion = optuna.create_study(
        study_name=companion_name(study_name),
        storage=storage,
        direction="minimize",
        load_if_exists=True,
    )
    if companion.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            companion.set_metric_names(["val_bpb"])
    return companion


def confirm_recipe(base: Recipe, factor: float, seed: int) -> Recipe:
    """The study's recipe at ``factor`` times its token budget (whole steps, at least one),
    seed ``seed``, measuring val_bpb (a proxy, blend or supernet recipe's training part)."""
    per_step = base.tokens_per_step
    steps = max(1, round(base.token_budget * factor / per_step))
    return base.training.replace(
        proxy=None,
        token_budget=steps * per_step,
        eval_points=min(steps, max(base.eval_points, MIN_EVAL_POINTS)),
        seed=seed,
    )


@dataclass(frozen=True)
class Job:
    """One run to train: a model at one seed and factor."""

    model: Model
    seed: int
    factor: float

    @property
    def key(self) -> tuple[int, int, float]:
        return run_key(self.model.trial, self.seed, self.factor)


def run_key(source: int, seed: int, factor: float) -> tuple[int, int, float]:
    return (int(source), int(seed), round(float(factor), 9))


def trial_key(trial: FrozenTrial) -> tuple[int, int, float] | None:
    recorded = trial.user_attrs
    if not all(key in recorded for key in (attrs.SOURCE_TRIAL, attrs.SEED, attrs.FACTOR)):
        return None
    return run_key(recorded[attrs.SOURCE_TRIAL], recorded[attrs.SEED], recorded[attrs.FACTOR])


def close_interrupted(companion: optuna.Study) -> int:
    """Close RUNNING runs (left by a confirm that was killed) as FAIL ``interrupted``."""
    running = companion.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for frozen in running:
        trial = optuna.Trial(companion, trial_id(frozen))
        trial.set_user_attr(attrs.STATUS, attrs.INTERRUPTED)
        trial.set_user_attr(attrs.REASON, INTERRUPTED)
        companion.tell(frozen.number, state=TrialState.FAIL)
    return len(running)


def plan(
    companion: optuna.Study, models: list[Model], seeds: int, factor: float
) -> tuple[list[Job], int]:
    """(runs still to train, runs already complete): seeds 0..seeds-1 of every model, minus
    those COMPLETE in the companion study. Seed-major, so every model gets its first seeds
    before any gets its last: an interrupted confirm leaves pairs, not one model's seeds."""
    done = {
        trial_key(t) for t in companion.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    }
    jobs = [Job(model, seed, factor) for seed in range(seeds) for model in models]
    todo = [job for job in jobs if job.key not in done]
    return todo, len(jobs) - len(todo)


def completed_runs(
    companion: optuna.Study, factor: float, seeds: int
) -> dict[int, dict[int, float]]:
    """Source trial -> {seed: final val_bpb} of the COMPLETE runs at ``factor``, seeds < seeds."""
    out: dict[int, dict[int, float]] = {}
    for trial in companion.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = trial_key(trial)
        if key is None or key[2] != run_key(0, 0, factor)[2] or key[1] >= seeds:
            continue
        if trial.value is not None and math.isfinite(trial.value):
            out.setdefault(key[0], {})[key[1]] = float(trial.value)
    return out


def failed_runs(companion: optuna.Study, factor: float) -> dict[tuple[int, int, float], str]:
    """Runs whose latest attempt at ``factor`` failed (not interrupted): key -> reason."""
    latest: dict[tuple[int, int, float], FrozenTrial] = {}
    for trial in companion.get_trials(deepcopy=False):
        key = trial_key(trial)
        if key is not None and key[2] == run_key(0, 0, factor)[2]:
            latest[key] = trial
    return {
        key: str(t.user_attrs.get(attrs.REASON, attrs.FAILED))
        for key, t in latest.items()
        if t.user_attrs.get(attrs.STATUS) == attrs.FAILED
    }


# ---- running ---------------------------------------------------------------------------------


def run_folder_for(base: Path, study_name: str, job: Job) -> Path:
    """Where a run checkpoints: one folder per (study, source trial, seed, factor)."""
    return base / "confirm" / study_name / f"trial{job.model.trial}-seed{job.seed}-x{job.factor:g}"


def train_run(arch: dict[str, Any], recipe: Recipe, out_dir: str, threads: int = 1) -> dict:
    """Train one run on a worker (top level, so Ray ships it by reference); returns numbers.

    A checkpoint left in ``out_dir`` by an interrupted run is continued; one that cannot be
    continued (another recipe, a broken file) is set aside and the run starts over. A model
    that fails returns ``failed: reason`` instead of raising.
    """
    from archsearch.config import ArchConfig
    from archsearch.errors import InputError
    from archsearch.evaluate import CandidateFailed
    from archsearch.evaluate.checkpoint import CHECKPOINT, train_resumable

    folder = Path(out_dir)
    started = time.perf_counter()
    try:
        config = ArchConfig.from_dict(arch)
        resume = (folder / CHECKPOINT).exists()
        try:
            outcome = train_resumable(
                config, recipe, folder, resume=resume, threads=threads, order_seed=recipe.seed
            )
        except InputError:
            if not resume:
                raise
            shutil.rmtree(folder, ignore_errors=True)
            outcome = train_resumable(
                config, recipe, folder, threads=threads, order_seed=recipe.seed
            )
    except CandidateFailed as exc:
        return {"failed": exc.reason, "wall_s": time.perf_counter() - started}
    except Exception as exc:  # a broken model must not stop the other runs
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {
            "failed": f"{type(exc).__name__}: {message}",
            "wall_s": time.perf_counter() - started,
        }
    curve = [
        {"step": p["step"], "tokens": p["tokens"], "val_bpb": p["val_bpb"]} for p in outcome.curve
    ]
    value = curve[-1]["val_bpb"] if curve else math.nan
    if not math.isfinite(value):
        return {"failed": f"non-finite validation loss {value}", "curve": curve}
    return {
        "val_bpb": value,
        "curve": curve,
        "wall_s": time.perf_counter() - started,
        "steps": outcome.step,
        "tokens": recipe.token_budget,
        "data_fingerprint": outcome.data_fingerprint,
        "resumed": resume,
    }


Event = Callable[[Job, dict[str, Any]], None]


def execute(
    companion: optuna.Study,
    jobs: list[Job],
    base: Recipe,
    *,
    workers: int,
    folder: Path,
    study_name: str,
    on_result: Event | None = None,
) -> dict[str, int]:
    """Train ``jobs`` on Ray, ``workers`` at a time, recording each in ``companion``.

    Ray must be initialised (``ensure_ray``). On any exit before the end (Ctrl-C, an error)
    the runs in flight are cancelled and closed as ``interrupted``, and the exception goes on.
    """
    import ray

    remote = ray.remote(num_cpus=1, max_retries=0)(train_run)
    queue = list(jobs)
    pending: dict[Any, tuple[optuna.Trial, Job]] = {}
    counts = {"complete": 0, "failed": 0}
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                job = queue.pop(0)
                recipe = confirm_recipe(base, job.factor, job.seed)
                trial = _start(companion, job, recipe)
                out_dir = run_folder_for(folder, study_name, job)
                ref = remote.remote(job.model.arch, recipe, str(out_dir))
                pending[ref] = (trial, job)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                trial, job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died (memory, a lost node)
                    lines = str(exc).strip().splitlines()
                    result = {
                        "failed": f"worker lost: {lines[-1] if lines else type(exc).__name__}"
                    }
                counts[_finish(companion, trial, result)] += 1
                if on_result is not None:
                    on_result(job, result)
    except BaseException:
        for ref, (trial, _) in pending.items():
            ray.cancel(ref, force=True)
            trial.set_user_attr(attrs.STATUS, attrs.INTERRUPTED)
            trial.set_user_attr(attrs.REASON, INTERRUPTED)
            companion.tell(trial, state=TrialState.FAIL)
        raise
    return counts


def _start(companion: optuna.Study, job: Job, recipe: Recipe) -> optuna.Trial:
    trial = companion.ask()
    model = job.model
    for key, value in {
        attrs.SOURCE_TRIAL: model.trial,
        attrs.SEED: job.seed,
        attrs.FACTOR: job.factor,
        attrs.MODEL: model.name,
        attrs.BASELINE: model.baseline,
        attrs.ARCH: model.arch,
        attrs.MACS: model.macs,
        attrs.TOKEN_BUDGET: recipe.token_budget,
        attrs.STATUS: attrs.TRAINING,
    }.items():
        if value is not None:
            trial.set_user_attr(key, value)
    return trial


def _finish(companion: optuna.Study, trial: optuna.Trial, result: dict[str, Any]) -> str:
    for key in RESULT_ATTRS:
        if key in result:
            trial.set_user_attr(key, result[key])
    if "failed" in result:
        trial.set_user_attr(attrs.STATUS, attrs.FAILED)
        trial.set_user_attr(attrs.REASON, result["failed"])
        companion.tell(trial, state=TrialState.FAIL)
        return "failed"
    trial.set_user_attr("val_bpb", result["val_bpb"])
    trial.set_user_attr(attrs.STATUS, attrs.COMPLETE)
    companion.tell(trial, result["val_bpb"])
    return "complete"
