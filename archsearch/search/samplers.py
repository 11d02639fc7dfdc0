"""Optuna samplers selectable by ``--sampler``: tpe (default), nsga2, random, grid.

``grid`` trains every configuration of a finite space once. Optuna's ``GridSampler`` needs all
parameter names up front, which a define-by-run space with conditional and per-layer parameters
does not have: it would train a 2-layer model once per value of the unused ``heads.3``.
``BruteForceSampler`` walks the suggested tree instead, but it breaks on a trial with partial
parameters (a driver killed between ``ask`` and the last ``suggest``) and ends the search with
``study.stop()``, which only works inside ``study.optimize``. So the grid here lists the
space's configurations itself, by walking every branch of the space's draws
(``SearchSpace.branches``, the same enumeration the space's load-time check uses), and hands
each trial the next one no trial has taken yet.
"""

from __future__ import annotations

import math
import random
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.errors import InputError
from archsearch.search.defaults import SAMPLERS
from archsearch.search.trials import trial_params
from archsearch.space import SearchSpace

GRID_LIMIT = 10_000  # configurations; a grid beyond this would take weeks of brief trainings
Key = tuple[tuple[str, Any], ...]


def make_sampler(
    name: str, seed: int, space: SearchSpace | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler for ``--sampler name``; the grid needs the space it enumerates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "nsga2":
            return NSGAIISampler(seed=seed)
        if name == "random":
            return RandomSampler(seed=seed)
        if name == "grid":
            if space is None:
                raise ValueError("the grid sampler needs the search space")
            return GridSampler(space, seed=seed)
        if name == "tpe":
            # group: per-layer and conditional parameters form separate sub-spaces;
            # constant_liar: parallel workers are not handed near-copies of running trials.
            return TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    raise InputError(f"must be one of {', '.join(SAMPLERS)}, got {name!r}", key="--sampler")


_RLOCK = type(threading.RLock())
_LOCKS = (type(threading.Lock()), _RLOCK)


class PicklesWithoutLocks:
    """Mixin: pickle a sampler without its thread locks and give the copy fresh ones.

    Ray Tune pickles the search algorithm, sampler included, when the Tuner is built (and in its
    experiment checkpoints). Optuna 5.1's genetic samplers hold a ``threading.Lock``, which no
    pickler can write; a lock guards a live object only, so a copy starts with a new one.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        locks = {n: isinstance(v, _RLOCK) for n, v in state.items() if isinstance(v, _LOCKS)}
        for name in locks:
            del state[name]
        state["_archsearch_locks"] = locks
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks: dict[str, bool] = state.pop("_archsearch_locks", {})
        self.__dict__.update(state)
        for name, rlock in locks.items():
            setattr(self, name, threading.RLock() if rlock else threading.Lock())


class TPESampler(PicklesWithoutLocks, optuna.samplers.TPESampler):
    """Optuna's TPE sampler, picklable whatever locks a release adds."""


class NSGAIISampler(PicklesWithoutLocks, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler, picklable although Optuna 5.1 gave it a thread lock."""


class RandomSampler(PicklesWithoutLocks, optuna.samplers.RandomSampler):
    """Optuna's random sampler, picklable whatever locks a release adds."""


def configurations(space: SearchSpace, limit: int = GRID_LIMIT) -> list[dict[str, Any]]:
    """Every configuration of ``space`` as Optuna parameters; InputError if infinite or huge.

    Rejected candidates (broken constraints, over budget) are configurations too: the grid
    visits them like the others and the driver rejects them before any worker.
    """
    for param in space.params.values():
        if math.isinf(param.size):
            raise InputError(
                f"grid needs a finite space, but parameter '{param.name}' is continuous "
                "(give it a step, or use another sampler)",
                key="--sampler",
            )
    found: list[dict[str, Any]] = []
    for _, params in space.branches():
        found.append(params)
        if len(found) > limit:
            raise InputError(
                f"grid over space '{space.name}' has more than {limit} configurations "
                "(per-layer parameters multiply them); fix some parameters in the space or use "
                "tpe, nsga2 or random",
                key="--sampler",
            )
    return found


def grid_size(space: SearchSpace, limit: int = GRID_LIMIT) -> int:
    """How many configurations a grid over ``space`` trains (InputError if it cannot)."""
    return len(configurations(space, limit))


class GridSampler(PicklesWithoutLocks, optuna.samplers.BaseSampler):
    """Every configuration of a define-by-run space once, in a seeded random order.

    Taken means tried or being tried by a trial of the study (any state but WAITING), or
    queued (WAITING with fixed parameters: baselines, retries of interrupted trials). A trial
    with partial parameters (killed mid-suggest) takes nothing.
    """

    def __init__(self, space: SearchSpace, seed: int | None = None, limit: int = GRID_LIMIT):
        self.configs = configurations(space, limit)
        random.Random(seed).shuffle(self.configs)
        self._keys = [_key(config) for config in self.configs]
        self._taken: set[Key] | None = None  # read from the study once, then kept up to date
        self._assigned: dict[int, dict[str, Any]] = {}  # trial number -> its configuration
        self._fallback = RandomSampler(seed=seed)

    def remaining(self, study: optuna.Study) -> int:
        """Configurations no trial has taken."""
        taken = self._taken_in(study)
        return sum(1 for key in self._keys if key not in taken)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        taken = self._taken_in(study)
        fixed = trial.system_attrs.get("fixed_params")
        if fixed:
            taken.add(_key(fixed))
            return
        for config, key in zip(self.configs, self._keys, strict=True):
            if key not in taken:
                taken.add(key)
                self._assigned[trial.number] = config
                return

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, optuna.distributions.BaseDistribution]:
        return {}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, optuna.distributions.BaseDistribution],
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: optuna.distributions.BaseDistribution,
    ) -> Any:
        config = self._assigned.get(trial.number)
        if config is None or param_name not in config:
            # Only when the grid is used up (the searcher stops before) or the space changed.
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        return config[param_name]

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._assigned.pop(trial.number, None)

    def _taken_in(self, study: optuna.Study) -> set[Key]:
        if self._taken is None:
            self._taken = set()
            for trial in study.get_trials(deepcopy=False):
                self._taken.add(_key(trial_params(trial)))
        return self._taken


def _key(params: dict[str, Any]) -> Key:
    return tuple(sorted(params.items()))
