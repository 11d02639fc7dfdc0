"""A candidate proposed again is answered from its trained twin, not trained twice."""

from __future__ import annotations

import optuna

from archsearch.search import SearchOptions, run_search
from archsearch.search.resume import trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_SPACE, write_yaml

TWO_CHOICES = {
    **TINY_SPACE,
    "params": {"n_layers": {"int": [1, 1]}, "d_model": {"choice": [16, 32]}},
    "fixed": {**TINY_SPACE["fixed"], "heads": 2, "ffn_ratio": 1},
}


def test_repeated_proposals_reuse_the_trained_result(ray_local, tiny_inputs, tmp_path):
    space = write_yaml(tmp_path / "two.yaml", TWO_CHOICES)
    options = SearchOptions(
        profile=str(tiny_inputs["profile"]),
        space=str(space),
        evaluator=str(tiny_inputs["evaluator"]),
        storage=tiny_inputs["storage"],
        study="two",
        trials=2,
        workers=1,
        sampler="random",
        seed=1,
    )
    run_search(options)
    study = load_study(tiny_inputs["storage"], "two")
    complete = [t for t in study.trials if t.user_attrs.get("status") == "complete"]
    duplicates = [t for t in study.trials if t.user_attrs.get("status") == "duplicate"]
    assert trained_count(study) == 2
    assert sorted(t.user_attrs["arch"]["d_model"] for t in complete) == [16, 32]
    assert duplicates, "two configurations, random proposals: some must repeat"
    for trial in duplicates:
        twin = study.trials[trial.user_attrs["duplicate_of"]]
        assert twin.user_attrs["status"] == "complete"
        assert twin.user_attrs["arch"] == trial.user_attrs["arch"]
        assert trial.values == twin.values
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert "wall_s" not in trial.user_attrs  # never reached a worker
