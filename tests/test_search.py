"""The search driver end to end with real Optuna, Ray Tune and SQLite (tiny models)."""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from archsearch import ArchConfig, estimate_costs, load_profile, load_space
from archsearch.search import SearchOptions, run_search
from archsearch.search.constraints import is_feasible
from archsearch.search.resume import trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, write_yaml

pytestmark = pytest.mark.slow


def options(inputs, **overrides) -> SearchOptions:
    base = dict(
        profile=str(inputs["profile"]),
        space=str(inputs["space"]),
        evaluator=str(inputs["evaluator"]),
        storage=inputs["storage"],
        study="micro",
        trials=4,
        workers=2,
        seed=0,
    )
    base.update(overrides)
    return SearchOptions(**base)


def by_status(study: optuna.Study, status: str) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials() if t.user_attrs.get("status") == status]


def test_search_trains_feasible_and_rejects_over_budget(ray_local, tiny_inputs):
    summary = run_search(options(tiny_inputs, trials=6))
    study = load_study(tiny_inputs["storage"], "micro")
    budget = load_profile(tiny_inputs["profile"]).budgets["macs"]

    assert summary.trained == trained_count(study) == 6
    complete = by_status(study, "complete")
    infeasible = by_status(study, "infeasible")
    assert complete, "nothing trained"
    assert infeasible, "the micro space is ~40% over the 1M budget; some proposals must be"
    assert summary.rejected_infeasible == len(infeasible)

    for trial in complete:
        attrs = trial.user_attrs
        assert attrs["macs"] <= budget
        assert attrs["wall_s"] > 0 and attrs["cpu_s"] > 0 and attrs["params"] > 0
        assert trial.values[1] == attrs["macs"]
        assert math.isfinite(trial.values[0]) and trial.values[0] < 8.0  # learned something
        assert is_feasible(trial)
        # The stored description rebuilds to the same analytic cost.
        config = ArchConfig.from_dict(attrs["arch"])
        assert estimate_costs(config, load_profile(tiny_inputs["profile"])).macs == attrs["macs"]
    for trial in infeasible:
        assert trial.user_attrs["macs"] > budget
        assert "over" not in trial.user_attrs["reason"] or "budget" in trial.user_attrs["reason"]
        assert not is_feasible(trial)
        assert "wall_s" not in trial.user_attrs  # never reached a worker
    best = {t.number for t in study.best_trials}
    assert best and best <= {t.number for t in complete}
    assert study.user_attrs["profile"]["convention"]["tokens"] == 30
    assert len(study.user_attrs["data_fingerprint"]) >= 16


def test_running_again_continues_the_study(ray_local, tiny_inputs):
    run_search(options(tiny_inputs, trials=2))
    study = load_study(tiny_inputs["storage"], "micro")
    first = {t.number for t in study.get_trials() if t.user_attrs.get("status") == "complete"}
    run_search(options(tiny_inputs, trials=4))
    study = load_study(tiny_inputs["storage"], "micro")
    assert trained_count(study) == 4
    again = {t.number for t in study.get_trials() if t.user_attrs.get("status") == "complete"}
    assert first < again
    # Same target again: nothing left to run, nothing added.
    before = len(study.get_trials())
    run_search(options(tiny_inputs, trials=4))
    assert len(load_study(tiny_inputs["storage"], "micro").get_trials()) == before


def test_interrupted_trial_is_closed_and_trained_once_more(ray_local, tiny_inputs):
    run_search(options(tiny_inputs, trials=1))
    storage = optuna.storages.RDBStorage(tiny_inputs["storage"])
    study = optuna.load_study(study_name="micro", storage=storage)
    # What a killed driver leaves behind: a trial handed to a worker, still RUNNING.
    params = {"n_layers": 1, "d_model": 16, "heads": 2, "ffn_ratio": 1}
    study.enqueue_trial(params)
    trial = study.ask()
    load_space(tiny_inputs["space"]).suggest(trial)
    trial.set_user_attr("status", "training")

    run_search(options(tiny_inputs, trials=2))
    study = load_study(tiny_inputs["storage"], "micro")
    interrupted = study.trials[trial.number]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["status"] == "interrupted"
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == trial.number]
    assert len(retried) == 1
    assert retried[0].params == params and retried[0].user_attrs["status"] == "complete"
    assert trained_count(study) == 2


def test_failing_candidates_are_recorded_and_the_search_goes_on(ray_local, tiny_inputs, tmp_path):
    exploding = {**TINY_RECIPE, "optimizer": {**TINY_RECIPE["optimizer"], "lr": 1.0e30}}
    recipe = write_yaml(tmp_path / "exploding.yaml", exploding)
    summary = run_search(options(tiny_inputs, evaluator=str(recipe), trials=3))
    study = load_study(tiny_inputs["storage"], "micro")
    failed = by_status(study, "failed")
    assert summary.trained == 3
    assert failed, "a learning rate of 1e30 must break training"
    for trial in failed:
        assert trial.state == optuna.trial.TrialState.FAIL
        assert trial.user_attrs["reason"]


def test_study_refuses_a_different_evaluator_data(ray_local, tiny_inputs):
    run_search(options(tiny_inputs, trials=1))
    storage = optuna.storages.RDBStorage(tiny_inputs["storage"])
    study = optuna.load_study(study_name="micro", storage=storage)
    study.set_user_attr("data_fingerprint", "another-python")
    from archsearch.errors import InputError

    with pytest.raises(InputError, match="data_fingerprint"):
        run_search(options(tiny_inputs, trials=2))


def test_budget_file_round_trip(tiny_inputs):
    profile = load_profile(tiny_inputs["profile"])
    assert (
        profile.to_dict()["budgets"]
        == yaml.safe_load(tiny_inputs["profile"].read_text())["budgets"]
    )
