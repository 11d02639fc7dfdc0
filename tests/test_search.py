"""The search driver end to end with real Optuna, Ray Tune and SQLite (tiny models).

Ray searches cost seconds each, so one test follows a study through its life: a first run,
a driver killed mid-trial, a longer run that continues it, and a run with nothing left to do.
"""

from __future__ import annotations

import math

import optuna
import pytest
import yaml

from archsearch import ArchConfig, estimate_costs, load_profile, load_space
from archsearch.errors import InputError
from archsearch.search import SearchOptions, run_search
from archsearch.search.baselines import design_baselines
from archsearch.search.constraints import is_feasible
from archsearch.search.resume import trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_PROFILE, TINY_RECIPE, write_yaml

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


def kill_driver_mid_trial(inputs, params: dict) -> int:
    """What a driver killed with SIGKILL leaves behind: a trial handed to a worker, RUNNING."""
    storage = optuna.storages.RDBStorage(inputs["storage"])
    study = optuna.load_study(study_name="micro", storage=storage)
    study.enqueue_trial(params)
    trial = study.ask()
    load_space(inputs["space"]).suggest(trial)
    trial.set_user_attr("status", "training")
    return trial.number


def test_a_study_is_searched_killed_continued_and_accounted(ray_local, tiny_inputs, tmp_path):
    profile = load_profile(tiny_inputs["profile"])
    space = load_space(tiny_inputs["space"])
    budget = profile.budgets["macs"]

    # 1. A first run: baselines first, feasible candidates trained, the rest rejected.
    summary = run_search(options(tiny_inputs, trials=6))
    study = load_study(tiny_inputs["storage"], "micro")
    assert summary.trained == trained_count(study) == 6 and summary.ended == "done"
    complete, infeasible = by_status(study, "complete"), by_status(study, "infeasible")
    assert infeasible, "the micro space is ~40% over the 1M budget; some proposals must be"
    assert summary.rejected_infeasible == len(infeasible)

    designed = {b.name: b for b in design_baselines(space, profile)}
    assert set(designed) == {"transformer", "lite_transformer"}
    assert summary.baselines == ["transformer", "lite_transformer"]
    for number, name in enumerate(summary.baselines):  # queued first, trained first
        trial = study.trials[number]
        assert trial.user_attrs["baseline"] == name
        assert trial.params == designed[name].params
        assert trial.user_attrs["status"] == "complete"

    for trial in complete:
        attrs = trial.user_attrs
        assert attrs["macs"] <= budget
        assert attrs["wall_s"] > 0 and attrs["cpu_s"] > 0 and attrs["params"] > 0
        assert trial.values[1] == attrs["macs"]
        assert math.isfinite(trial.values[0]) and trial.values[0] < 8.0  # learned something
        assert is_feasible(trial)
        assert attrs["curve"][-1]["val_bpb"] == trial.values[0]
        assert attrs["data_fingerprint"] == study.user_attrs["data_fingerprint"]
        # The stored description rebuilds to the same analytic cost.
        config = ArchConfig.from_dict(attrs["arch"])
        assert estimate_costs(config, profile).macs == attrs["macs"]
    for trial in infeasible:
        assert trial.state == optuna.trial.TrialState.PRUNED  # off every Pareto front
        assert trial.user_attrs["macs"] > budget and "budget" in trial.user_attrs["reason"]
        assert not is_feasible(trial)
        assert "wall_s" not in trial.user_attrs  # never reached a worker
    best = {t.number for t in study.best_trials}
    assert best and best <= {t.number for t in complete}
    assert study.user_attrs["profile"]["convention"]["tokens"] == 30

    # 2. A driver killed mid-trial, then a longer run: the candidate is trained once more.
    params = {"n_layers": 1, "d_model": 16, "heads": 2, "ffn_ratio": 1}
    killed = kill_driver_mid_trial(tiny_inputs, params)
    summary = run_search(options(tiny_inputs, trials=8))
    study = load_study(tiny_inputs["storage"], "micro")
    assert trained_count(study) == 8 and summary.baselines == []  # baselines once per study
    assert len([t for t in study.trials if "baseline" in t.user_attrs]) == 2
    interrupted = study.trials[killed]
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert interrupted.user_attrs["status"] == "interrupted"
    assert interrupted.user_attrs["interrupted_while"] == "training"
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == killed]
    assert len(retried) == 1
    assert retried[0].params == params and retried[0].user_attrs["status"] == "complete"

    # 3. Same target again: nothing to run, nothing added but the run's cost entry.
    before = len(study.trials)
    assert run_search(options(tiny_inputs, trials=8)).trained == 8
    study = load_study(tiny_inputs["storage"], "micro")
    assert len(study.trials) == before

    # Cost accounting across the three runs: per trial, per run, totals that add up.
    attrs = study.user_attrs
    runs = attrs["search_runs"]
    assert [run["status"] for run in runs] == ["done", "done", "done"]
    assert [run["trained"] for run in runs] == [6, 2, 0]
    assert all(run["wall_s"] > 0 and run["driver_cpu_s"] > 0 for run in runs)
    trial_cpu = sum(t.user_attrs.get("cpu_s", 0.0) for t in study.trials)
    assert attrs["search_trial_cpu_s"] == pytest.approx(trial_cpu, abs=1e-2)
    driver_cpu = sum(run["driver_cpu_s"] for run in runs)
    assert attrs["search_driver_cpu_s"] == pytest.approx(driver_cpu, abs=1e-2)
    assert attrs["search_cpu_s"] == pytest.approx(trial_cpu + driver_cpu, abs=2e-2)
    assert attrs["search_wall_s"] == pytest.approx(sum(run["wall_s"] for run in runs), abs=1e-2)
    trial_wall = sum(t.user_attrs.get("wall_s", 0.0) for t in study.trials)
    assert attrs["search_trial_wall_s"] == pytest.approx(trial_wall, abs=1e-2)

    # 4. The study refuses a run whose results would not compare, rather than mixing them.
    longer = write_yaml(tmp_path / "longer.yaml", {**TINY_RECIPE, "token_budget": 2048})
    with pytest.raises(InputError, match="evaluator token_budget"):
        run_search(options(tiny_inputs, trials=9, evaluator=str(longer)))
    tighter = write_yaml(tmp_path / "tighter.yaml", {**TINY_PROFILE, "budgets": {"macs": 5e5}})
    with pytest.raises(InputError, match="profile budgets"):
        run_search(options(tiny_inputs, trials=9, profile=str(tighter)))
    writable = optuna.load_study(
        study_name="micro", storage=optuna.storages.RDBStorage(tiny_inputs["storage"])
    )
    writable.set_user_attr("data_fingerprint", "another-python")
    with pytest.raises(InputError, match="data_fingerprint"):
        run_search(options(tiny_inputs, trials=9))
    assert len(load_study(tiny_inputs["storage"], "micro").trials) == before


def test_budget_file_round_trip(tiny_inputs):
    profile = load_profile(tiny_inputs["profile"])
    assert (
        profile.to_dict()["budgets"]
        == yaml.safe_load(tiny_inputs["profile"].read_text())["budgets"]
    )
