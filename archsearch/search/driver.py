"""``archsearch run``: wire the space, profile and evaluator into Optuna + Ray Tune and go.

Only this process writes the study. Workers receive a candidate's flat description and report
metrics back through Tune; the searcher records everything in the study.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from archsearch import __version__
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe, load_recipe
from archsearch.profiles import Profile, load_profile
from archsearch.search.storage import DEFAULT_STORAGE, open_storage, run_folder
from archsearch.space import SearchSpace, load_space

SAMPLERS = ("tpe", "nsga2", "random")
TRAINED_STATUSES = ("complete", "failed", "stopped")


@dataclass
class SearchOptions:
    """Everything ``archsearch run`` takes; the CLI fills it from flags."""

    profile: str = "mobile_100M"
    space: str = "tiny_lm"
    evaluator: str = "lm_brief"
    trials: int = 12
    workers: int = 2
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    seed: int = 0
    address: str | None = None
    sampler: str = "tpe"
    timeout: float | None = None


@dataclass
class SearchSummary:
    study_name: str
    storage: str
    trained: int
    rejected_infeasible: int
    rejected_invalid: int
    wall_s: float
    exhausted: bool


@dataclass
class Inputs:
    space: SearchSpace
    profile: Profile
    recipe: Recipe


def load_inputs(options: SearchOptions) -> Inputs:
    """Read and cross-check the three YAML axes before anything starts."""
    space = load_space(options.space)
    profile = load_profile(options.profile)
    recipe = load_recipe(options.evaluator)
    if space.task != recipe.task:
        raise InputError(
            f"space '{space.name}' is {space.task} but evaluator '{recipe.name}' measures "
            f"{recipe.task}",
            key="--evaluator",
        )
    for name, value, low in (("--trials", options.trials, 1), ("--workers", options.workers, 1)):
        if value < low:
            raise InputError(f"must be >= {low}, got {value}", key=name)
    if options.sampler not in SAMPLERS:
        raise InputError(f"must be one of {', '.join(SAMPLERS)}", key="--sampler")
    return Inputs(space=space, profile=profile, recipe=recipe)


def default_study_name(inputs: Inputs) -> str:
    """Deterministic, so running the same command again continues the same study."""
    return f"{inputs.space.name}.{inputs.profile.name}.{inputs.recipe.name}"


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def run_search(options: SearchOptions, *, console: Any = None) -> SearchSummary:
    """Run (or continue) a study until it holds ``options.trials`` trained candidates."""
    from ray import tune

    from archsearch.search.progress import SearchProgress
    from archsearch.search.ray_session import ensure_ray
    from archsearch.search.resume import recover_interrupted, trained_count
    from archsearch.search.searcher import ArchSearcher, uniform_bits
    from archsearch.search.trainable import train_candidate

    inputs = load_inputs(options)
    study_name = options.study or default_study_name(inputs)
    storage = open_storage(options.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()

    searcher = ArchSearcher(
        inputs.space,
        inputs.profile,
        sampler=make_sampler(options.sampler, options.seed),
        storage=storage,
        study_name=study_name,
        placeholder_quality=uniform_bits(inputs.recipe.vocab_size),
    )
    study = searcher.study
    _describe_study(study, inputs, options)
    recovered = recover_interrupted(study)
    remaining = options.trials - trained_count(study)
    progress = SearchProgress(searcher, total=options.trials, done=trained_count(study))
    if console is not None:
        progress.console = console
    if recovered:
        progress.console.print(
            f"resumed: {recovered} interrupted trial(s) marked failed and queued again"
        )
    if remaining > 0:
        ensure_ray(options.address, num_cpus=options.workers)
        logging.getLogger("ray.tune").setLevel(logging.ERROR)
        trainable = tune.with_resources(
            tune.with_parameters(train_candidate, recipe=inputs.recipe, threads=1), {"cpu": 1}
        )
        from ray.tune.search import ConcurrencyLimiter

        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=options.workers),
                num_samples=remaining,
                time_budget_s=options.timeout,
                reuse_actors=True,  # one worker process per slot: torch is imported once
            ),
            run_config=tune.RunConfig(
                name=f"{study_name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(run_folder(options.storage) / "ray"),
                verbose=0,
                callbacks=[progress],
            ),
        )
        with progress:
            tuner.fit()
    wall = time.perf_counter() - started
    _account(study, wall)
    return SearchSummary(
        study_name=study_name,
        storage=options.storage,
        trained=trained_count(study),
        rejected_infeasible=_count(study, "infeasible"),
        rejected_invalid=_count(study, "invalid"),
        wall_s=wall,
        exhausted=searcher.exhausted,
    )


def _describe_study(study: optuna.Study, inputs: Inputs, options: SearchOptions) -> None:
    """Store what the study is, once: later runs must not silently mix other settings in."""
    from archsearch.evaluate.corpus import load_corpus

    fingerprint = load_corpus(inputs.recipe.data).fingerprint
    description = {
        "space": inputs.space.name,
        "space_source": str(inputs.space.source),
        "profile": inputs.profile.to_dict(),
        "evaluator": inputs.recipe.to_dict(),
        "data_fingerprint": fingerprint,
        "objectives": ["val_bpb", *inputs.profile.objectives],
        "constraint_names": list(inputs.profile.budgets),
    }
    existing = study.user_attrs
    if "data_fingerprint" in existing:
        for key in ("data_fingerprint", "objectives", "constraint_names"):
            if existing.get(key) != description[key]:
                raise InputError(
                    f"study '{study.study_name}' was run with another {key}; "
                    "use --study to start a new study",
                    key="--study",
                )
        return
    for key, value in description.items():
        study.set_user_attr(key, value)
    study.set_user_attr("archsearch_version", __version__)
    study.set_user_attr("seed", options.seed)
    study.set_user_attr("sampler", options.sampler)


def _account(study: optuna.Study, driver_wall_s: float) -> None:
    """Search cost: per-trial CPU and wall seconds summed, plus the driver's own wall time."""
    trials = study.get_trials(deepcopy=False)
    study.set_user_attr("search_cpu_s", sum(t.user_attrs.get("cpu_s", 0.0) for t in trials))
    study.set_user_attr("search_trial_wall_s", sum(t.user_attrs.get("wall_s", 0.0) for t in trials))
    previous = study.user_attrs.get("search_wall_s", 0.0)
    study.set_user_attr("search_wall_s", previous + driver_wall_s)


def _count(study: optuna.Study, status: str) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == status)


def storage_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None
