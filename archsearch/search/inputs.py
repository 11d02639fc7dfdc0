"""What ``archsearch run`` is asked to do, read and cross-checked before anything starts.

Kept free of Optuna, Ray and torch imports, so a wrong flag or a broken YAML file is answered
in a fraction of a second (``commands/run.py`` checks the inputs before importing the driver).
"""

from __future__ import annotations

from dataclasses import dataclass

from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe, load_recipe
from archsearch.profiles import Profile, load_profile
from archsearch.search.defaults import (
    DEFAULT_RUN_EVALUATOR,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULER,
    DEFAULT_SPACE,
    DEFAULT_STORAGE,
    DEFAULT_TRIALS,
    SAMPLERS,
    SCHEDULERS,
)
from archsearch.space import SearchSpace, load_space


@dataclass
class SearchOptions:
    """Everything ``archsearch run`` takes; the CLI fills it from flags."""

    profile: str = "mobile_100M"
    space: str = DEFAULT_SPACE
    evaluator: str = DEFAULT_RUN_EVALUATOR
    trials: int = DEFAULT_TRIALS
    workers: int = 2
    storage: str = DEFAULT_STORAGE
    study: str | None = None
    seed: int = 0
    address: str | None = None
    sampler: str = DEFAULT_SAMPLER
    scheduler: str = DEFAULT_SCHEDULER
    timeout: float | None = None


@dataclass
class Inputs:
    space: SearchSpace
    profile: Profile
    recipe: Recipe


def load_inputs(options: SearchOptions) -> Inputs:
    """Read and cross-check the three YAML axes and the flags before anything starts."""
    for name, value, low in (("--trials", options.trials, 1), ("--workers", options.workers, 1)):
        if value < low:
            raise InputError(f"must be >= {low}, got {value}", key=name)
    if options.sampler not in SAMPLERS:
        raise InputError(f"must be one of {', '.join(SAMPLERS)}", key="--sampler")
    if options.scheduler not in SCHEDULERS:
        raise InputError(f"must be one of {', '.join(SCHEDULERS)}", key="--scheduler")
    if options.timeout is not None and not options.timeout > 0:
        message = f"must be a positive number of seconds, got {options.timeout}"
        raise InputError(message, key="--timeout")
    space = load_space(options.space)
    profile = load_profile(options.profile)
    profile.prepare()  # e.g. a latency budget needs this machine's calibrated predictor
    recipe = load_recipe(options.evaluator)
    recipe.check_space(space)
    if recipe.supernet is not None:
        from archsearch.supernet.sharing import check_shareable

        try:
            check_finalist_recipe(recipe)
        except InputError as exc:
            raise exc.located(recipe.source) if recipe.source else exc from None
        try:
            check_shareable(space)  # memory or ALBERT sharing: refused before anything starts
        except InputError as exc:
            raise exc.located(space.source) if space.source else exc from None
    if options.sampler == "grid":
        from archsearch.search.samplers import grid_size

        grid_size(space)  # a continuous or huge space is an input error before anything starts
    return Inputs(space=space, profile=profile, recipe=recipe)


def finalist_recipe_name(recipe: Recipe) -> str:
    return str(recipe.supernet.finalist_evaluator)


def check_finalist_recipe(recipe: Recipe) -> Recipe:
    """The finalists' recipe, which must train (InputError naming the key otherwise)."""
    try:
        finalist = load_recipe(finalist_recipe_name(recipe))
    except InputError as exc:
        raise InputError(
            f"names a recipe that cannot be read: {exc}", key="supernet.finalist_evaluator"
        ) from None
    if not finalist.trains_candidates or finalist.task != recipe.task:
        raise InputError(
            f"'{finalist.name}' must be a {recipe.task} training recipe (no proxy, no supernet)",
            key="supernet.finalist_evaluator",
        )
    return finalist


def default_trials(evaluator: str) -> int:
    """``--trials`` left out: the candidates a supernet recipe scores, else DEFAULT_TRIALS."""
    recipe = load_recipe(evaluator)
    return recipe.supernet.candidates if recipe.supernet is not None else DEFAULT_TRIALS


def default_sampler(evaluator: str) -> str:
    """``--sampler`` left out: NSGA-II for a supernet recipe, else DEFAULT_SAMPLER."""
    from archsearch.search.defaults import SUPERNET_SAMPLER

    return SUPERNET_SAMPLER if load_recipe(evaluator).supernet is not None else DEFAULT_SAMPLER


def default_study_name(inputs: Inputs) -> str:
    """Deterministic, so running the same command again continues the same study."""
    return f"{inputs.space.name}.{inputs.profile.name}.{inputs.recipe.name}"
