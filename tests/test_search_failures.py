"""Candidates that raise, run out of memory or diverge are recorded as failed with their reason
and the search goes on (real Ray Tune, real torch errors)."""

from __future__ import annotations

import optuna
import pytest

from archsearch.search import SearchOptions, run_search
from archsearch.search.resume import trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, write_yaml

pytestmark = pytest.mark.slow

FAIL = optuna.trial.TrialState.FAIL
OOM_VOCAB = 2**34  # a 2**34 x 16 float embedding is 1 TiB: the allocator refuses it at once
OVERFLOW_VOCAB = 2**62  # 2**62 x 16 elements overflow torch's size arithmetic: a plain error


def test_raising_and_out_of_memory_candidates_fail_and_the_grid_goes_on(
    ray_local, tiny_inputs, tmp_path
):
    space = write_yaml(
        tmp_path / "vocab.yaml",
        {
            "name": "vocab",
            "task": "causal_lm",
            "fixed": {
                "max_seq_len": 32,
                "n_layers": 1,
                "d_model": 16,
                "heads": 2,
                "ffn_ratio": 1,
                "attention": "full",
                "ffn": "dense",
            },
            # Embedding and output layer are outside the MAC convention: all three fit.
            "params": {"vocab_size": {"choice": [256, OOM_VOCAB, OVERFLOW_VOCAB]}},
        },
    )
    summary = run_search(
        SearchOptions(
            profile=str(tiny_inputs["profile"]),
            space=str(space),
            evaluator=str(tiny_inputs["evaluator"]),
            storage=tiny_inputs["storage"],
            study="failures",
            trials=5,  # more than the space holds: the grid ends when all 3 are tried
            workers=2,
            sampler="grid",
        )
    )
    study = load_study(tiny_inputs["storage"], "failures")
    assert summary.ended == "exhausted" and summary.trained == trained_count(study) == 3
    outcome = {t.params["vocab_size"]: t for t in study.trials}
    assert sorted(outcome) == sorted([256, OOM_VOCAB, OVERFLOW_VOCAB])  # each once
    assert outcome[256].user_attrs["status"] == "complete"

    oom = outcome[OOM_VOCAB]
    assert oom.state == FAIL and oom.user_attrs["status"] == "failed"
    assert oom.user_attrs["failure"] == "out_of_memory"
    assert oom.user_attrs["reason"].startswith("out of memory: RuntimeError")
    assert "allocate" in oom.user_attrs["reason"]

    broken = outcome[OVERFLOW_VOCAB]
    assert broken.state == FAIL and broken.user_attrs["failure"] == "error"
    assert broken.user_attrs["reason"].startswith("RuntimeError")
    assert "overflow" in broken.user_attrs["reason"].lower()
    for trial in (oom, broken):  # what the failure cost is accounted too
        assert trial.user_attrs["wall_s"] > 0 and trial.user_attrs["cpu_s"] >= 0


def test_diverging_candidates_fail_and_the_search_goes_on(ray_local, tiny_inputs, tmp_path):
    exploding = {**TINY_RECIPE, "optimizer": {**TINY_RECIPE["optimizer"], "lr": 1.0e30}}
    recipe = write_yaml(tmp_path / "exploding.yaml", exploding)
    summary = run_search(
        SearchOptions(
            profile=str(tiny_inputs["profile"]),
            space=str(tiny_inputs["space"]),
            evaluator=str(recipe),
            storage=tiny_inputs["storage"],
            study="diverging",
            trials=3,
            workers=2,
        )
    )
    study = load_study(tiny_inputs["storage"], "diverging")
    assert summary.ended == "done" and summary.trained == 3
    failed = [t for t in study.trials if t.user_attrs.get("status") == "failed"]
    assert len(failed) == 3  # every candidate diverged; each was recorded, the search went on
    for trial in failed:
        assert trial.state == FAIL and trial.user_attrs["failure"] == "non_finite"
        reason = trial.user_attrs["reason"]
        assert "nan" in reason or "inf" in reason
    assert not study.best_trials
