"""Samplers by flag, and the grid over a define-by-run space: every configuration once.

The searcher is driven the way Ray Tune drives it (suggest, then on_trial_complete with the
trainable's final report), on a real Optuna study in SQLite, without starting Ray.
"""

from __future__ import annotations

import pickle
import threading
from collections import Counter

import optuna
import pytest
import ray.cloudpickle

from archsearch.errors import InputError
from archsearch.profiles import Profile
from archsearch.search.baselines import design_baselines, enqueue_baselines
from archsearch.search.defaults import SAMPLERS
from archsearch.search.resume import recover_interrupted
from archsearch.search.samplers import GridSampler, configurations, grid_size, make_sampler
from archsearch.search.searcher import ArchSearcher
from archsearch.space import SearchSpace, load_space

CONDITIONAL = {
    "name": "conditional",
    "task": "causal_lm",
    "fixed": {"vocab_size": 256, "max_seq_len": 32, "d_model": 32, "ffn": "dense", "ffn_ratio": 1},
    "params": {
        "n_layers": {"int": [1, 2]},
        "heads": {"choice": [2, 4], "per_layer": True},
        "attention": {"choice": ["full", "local"]},
        "window": {"choice": [4, 8], "when": "attention == 'local'"},
    },
}
# Per depth L: 2**L head choices x (full + local with 2 windows).
CONDITIONAL_SIZE = sum(2**layers * (1 + 2) for layers in (1, 2))
PROFILE = {
    "name": "p",
    "convention": {"tokens": 30, "exclude": ["embedding", "output"]},
    "budgets": {"macs": 300_000},  # one layer of width 32 fits, two do not
    "objectives": ["macs"],
}


def searcher_for(space, storage, sampler_name, seed=0) -> ArchSearcher:
    return ArchSearcher(
        space,
        Profile.from_dict(PROFILE),
        sampler=make_sampler(sampler_name, seed, space),
        storage=storage,
        study_name="s",
    )


def finish(searcher: ArchSearcher, trial_id: str, config: dict) -> None:
    """Report what the trainable reports at the end of training (figures are placeholders)."""
    result = {"val_bpb": 5.0, **config["objectives"], "wall_s": 1.0, "cpu_s": 1.0, "final": True}
    searcher.on_trial_complete(trial_id, result=result)


def params_key(trial: optuna.trial.FrozenTrial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_configurations_count_every_branch_of_a_conditional_per_layer_space():
    space = SearchSpace.from_dict(CONDITIONAL)
    found = configurations(space)
    assert len(found) == grid_size(space) == CONDITIONAL_SIZE == 18
    assert len({tuple(sorted(c.items())) for c in found}) == CONDITIONAL_SIZE
    assert {"heads.0", "heads.1", "window"} <= {name for c in found for name in c}


STEPPED = {
    **CONDITIONAL,
    "params": {
        **CONDITIONAL["params"],
        # 0.1 + 6 * 0.1 is 0.7000000000000001 in floats: the top value must come back as 0.7.
        "dropout": {"float": [0.1, 0.7], "step": 0.1},
        "capacity_factor": {"float": [1.0, 1.5], "step": 0.25, "per_layer": True},
    },
}
STEPPED_SIZE = sum(2**layers * 3**layers * (1 + 2) * 7 for layers in (1, 2))


def test_grid_and_space_enumerate_stepped_floats_alike_and_as_optuna_does():
    """The grid's walk and the space's own enumeration (its load-time check) are one walk, and
    each stepped float value is the one Optuna's samplers give, so a grid trial's parameters
    match a trial Optuna sampled itself."""
    space = SearchSpace.from_dict(STEPPED)
    grid = configurations(space)
    walked = [params for _, params in space.branches()]
    assert grid == walked
    assert len({params_key_of(c) for c in grid}) == len(grid) == STEPPED_SIZE
    # Every value the space's walk gives is a value of that parameter's Optuna distribution.
    for values, params in space.branches():
        assert 0.1 <= values["dropout"] <= 0.7
        assert all(1.0 <= c <= 1.5 for c in values["capacity_factor"])
        assert values["dropout"] == params["dropout"]
    assert {c["dropout"] for c in grid} == {0.1, 0.2, 0.1 + 2 * 0.1, 0.4, 0.5, 0.6, 0.7}
    # Optuna's random sampler, through the same define-by-run suggestions: every trial it draws
    # is one of the grid's configurations, value for value.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    keys = {params_key_of(c) for c in grid}
    drawn = set()
    for _ in range(400):
        trial = study.ask()
        space.suggest(trial)
        assert params_key_of(trial.params) in keys, trial.params
        drawn.add(trial.params["dropout"])
        study.tell(trial, 0.0)
    assert 0.7 in drawn  # the top value, where unclipped arithmetic overshoots


def params_key_of(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def test_grid_refuses_continuous_and_huge_spaces():
    continuous = {
        **CONDITIONAL,
        "params": {**CONDITIONAL["params"], "dropout": {"float": [0, 0.5]}},
    }
    with pytest.raises(InputError, match="continuous") as info:
        grid_size(SearchSpace.from_dict(continuous))
    assert info.value.key == "--sampler"
    with pytest.raises(InputError, match="more than") as info:
        grid_size(load_space("tiny_lm"))  # per-layer heads and ffn_ratio over 1-4 layers
    assert info.value.key == "--sampler"


def test_sampler_flag_picks_the_sampler():
    space = SearchSpace.from_dict(CONDITIONAL)
    kinds = {
        "tpe": optuna.samplers.TPESampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "random": optuna.samplers.RandomSampler,
        "grid": GridSampler,
    }
    for name, kind in kinds.items():
        assert isinstance(make_sampler(name, 0, space), kind)
    with pytest.raises(InputError):
        make_sampler("cmaes", 0, space)


@pytest.mark.parametrize(("name", "trials"), [("tpe", 6), ("nsga2", 4), ("random", 4)])
def test_each_sampler_searches_the_define_by_run_space(tmp_path, name, trials):
    space = SearchSpace.from_dict(CONDITIONAL)
    searcher = searcher_for(space, optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"), name)
    # Six configurations fit the budget (one layer); TPE must find all of them, and past its
    # random start-up trials (rejected and repeated proposals count) it samples from its model.
    for index in range(trials):
        config = searcher.suggest(f"t{index}")
        assert space.violations(config["arch"]) == []
        finish(searcher, f"t{index}", config)
    study = searcher.study
    trained = [t for t in study.trials if t.user_attrs.get("status") == "complete"]
    assert len(trained) == trials
    assert len({params_key(t) for t in trained}) == trials  # no architecture trained twice
    for trial in study.trials:
        if trial.user_attrs.get("status") == "duplicate":
            assert trial.state == optuna.trial.TrialState.COMPLETE
    assert study.best_trials


def test_grid_trains_each_configuration_once_across_baselines_rejections_and_resume(tmp_path):
    space = SearchSpace.from_dict(CONDITIONAL)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/grid.db")
    searcher = searcher_for(space, storage, "grid", seed=3)
    profile = Profile.from_dict(PROFILE)
    queued = enqueue_baselines(searcher.study, lambda: design_baselines(space, profile))
    assert queued

    # A first driver hands out 4 candidates, finishes 2 and dies with 2 in flight.
    handed = [(f"a{i}", searcher.suggest(f"a{i}")) for i in range(4)]
    for trial_id, config in handed[:2]:
        finish(searcher, trial_id, config)
    assert recover_interrupted(searcher.study) == 2  # what the next run does first

    # The next driver (a fresh sampler on the same study) goes on until the grid is used up.
    searcher = searcher_for(space, storage, "grid", seed=3)
    for index in range(100):
        config = searcher.suggest(f"b{index}")
        if config is searcher.FINISHED:
            break
        finish(searcher, f"b{index}", config)
    else:
        pytest.fail("the grid never finished")

    trials = searcher.study.get_trials()
    assert not [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    over = [t for t in trials if t.user_attrs.get("status") == "infeasible"]
    trained = [t for t in trials if t.user_attrs.get("status") == "complete"]
    assert over and trained
    counts = Counter(params_key(t) for t in over + trained)
    assert len(counts) == CONDITIONAL_SIZE and max(counts.values()) == 1  # all, each once
    baselines = {t.user_attrs["baseline"] for t in trained if "baseline" in t.user_attrs}
    assert baselines == {b.name for b in queued}
    retried = [t for t in trained if "retry_of" in t.user_attrs]
    assert len(retried) == 2


def _two_objective_study(sampler: optuna.samplers.BaseSampler, space: SearchSpace, trials: int):
    """A study that asks ``sampler`` for ``trials`` configurations of ``space`` in order."""
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    for _ in range(trials):
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, [float(arch["n_layers"]), float(len(trial.params))])
    return study


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_survives_ray_tunes_pickling_and_samples_as_the_original(name):
    # Ray Tune pickles the search algorithm, sampler included, with its cloudpickle when the
    # Tuner is built. Optuna 5.1's NSGA-II holds a thread lock, which fails that pickling unless
    # our wrapper drops and recreates it. The copy must also sample exactly as the original does
    # (same seed, same history), with a working lock of its own.
    space = SearchSpace.from_dict(CONDITIONAL)
    original = make_sampler(name, 7, space)
    copy = ray.cloudpickle.loads(ray.cloudpickle.dumps(original))
    assert pickle.loads(pickle.dumps(original)) is not None  # the standard pickler too
    for attribute, value in vars(original).items():
        if isinstance(value, type(threading.Lock()) | type(threading.RLock())):
            assert getattr(copy, attribute) is not value
            with getattr(copy, attribute):  # a fresh lock, usable
                pass
    first = _two_objective_study(original, space, 12)
    second = _two_objective_study(copy, space, 12)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
