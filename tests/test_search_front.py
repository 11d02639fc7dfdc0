"""The Pareto front holds only feasible, fully trained candidates, in Optuna and in
optuna-dashboard alike, with ASHA stopping weak candidates (real Ray Tune, real dashboard)."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest

from archsearch.search import SearchOptions, run_search
from archsearch.search.constraints import is_feasible
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, write_yaml

pytestmark = pytest.mark.slow

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def dashboard(storage_url: str) -> Iterator[str]:
    """optuna-dashboard's own WSGI app served over HTTP on a free loopback port."""
    from optuna_dashboard import wsgi

    server = make_server("127.0.0.1", 0, wsgi(storage_url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_front_excludes_infeasible_and_stopped_trials_in_optuna_and_dashboard(
    ray_local, tiny_inputs, tmp_path
):
    # Four eval points: ASHA has rungs after the first and the second.
    recipe = write_yaml(tmp_path / "four_points.yaml", {**TINY_RECIPE, "eval_points": 4})
    budget_tokens = TINY_RECIPE["token_budget"]
    run_search(
        SearchOptions(
            profile=str(tiny_inputs["profile"]),
            space=str(tiny_inputs["space"]),
            evaluator=str(recipe),
            storage=tiny_inputs["storage"],
            study="front",
            trials=8,
            workers=1,  # one at a time: ASHA's decisions do not depend on timing
            seed=0,
            sampler="nsga2",
            scheduler="asha",
        )
    )
    study = load_study(tiny_inputs["storage"], "front")
    trials = study.get_trials()
    status = {t.number: t.user_attrs.get("status") for t in trials}
    stopped = [t for t in trials if status[t.number] == "stopped"]
    infeasible = [t for t in trials if status[t.number] == "infeasible"]
    complete = [t for t in trials if status[t.number] == "complete"]
    # A proposal of an architecture already trained is answered from its twin, not trained.
    repeated = [t for t in trials if status[t.number] == "duplicate"]
    assert stopped, "ASHA with reduction factor 2 stops some of 6 sampled candidates"
    assert infeasible, "the micro space is ~40% over the 1M budget"

    # What ASHA stopped is pruned with its partial figures kept aside, never as values.
    for trial in stopped:
        assert trial.state == PRUNED and trial.values is None
        assert trial.user_attrs["tokens"] < budget_tokens
        assert trial.user_attrs["val_bpb_at_stop"] == trial.user_attrs["curve"][-1]["val_bpb"]
        assert len(trial.user_attrs["curve"]) < 4
    # What is COMPLETE was trained to the end (baselines are never stopped), and is feasible.
    assert {t.user_attrs.get("baseline") for t in complete} >= {"transformer", "lite_transformer"}
    for trial in complete:
        assert trial.user_attrs["tokens"] == budget_tokens
        assert len(trial.user_attrs["curve"]) == 4 and is_feasible(trial)
    for trial in infeasible:
        assert trial.state == PRUNED and not is_feasible(trial)
    for trial in repeated:
        twin = study.trials[trial.user_attrs["duplicate_of"]]
        assert trial.state == COMPLETE and trial.values == twin.values and is_feasible(trial)
    assert {t.number for t in trials if t.state == COMPLETE} == {
        t.number for t in complete + repeated
    }

    optuna_front = {t.number for t in study.best_trials}
    assert optuna_front and optuna_front <= {t.number for t in complete + repeated}

    with dashboard(tiny_inputs["storage"]) as base:
        studies = get_json(f"{base}/api/studies")["study_summaries"]
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "front")
        detail = get_json(f"{base}/api/studies/{study_id}")
    shown = {t["number"]: t for t in detail["trials"]}
    assert set(shown) == {t.number for t in trials}
    for trial in infeasible:  # marked infeasible, and not a completed point of its plots
        assert shown[trial.number]["state"] == "Pruned"
        assert max(shown[trial.number]["constraints"]) > 0
    for trial in complete + repeated:
        assert shown[trial.number]["state"] == "Complete"
        assert shown[trial.number]["constraints"]
        assert all(value <= 0 for value in shown[trial.number]["constraints"])
    for trial in stopped:
        assert shown[trial.number]["state"] == "Pruned"
    # The dashboard picks its best trials without looking at constraints: only what is
    # COMPLETE can be on it, so the two fronts agree.
    dashboard_front = {t["number"] for t in detail["best_trials"]}
    assert dashboard_front == optuna_front
