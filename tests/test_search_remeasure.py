"""After a latency-bounded search, the Pareto candidates are timed alone and both figures kept."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from archsearch import ArchConfig
from archsearch.costs import calibration
from archsearch.costs.latency import TimingOptions
from archsearch.costs.predictor import load_predictor
from archsearch.profiles import Profile
from archsearch.search.remeasure import STUDY_KEY, remeasure_front

FAST = TimingOptions(warmup=1, min_repeats=2, max_repeats=3, min_time_s=0.0, clock="cpu")
PROFILE = {
    "name": "tiny_latency",
    "convention": {"tokens": 16, "exclude": ["embedding", "output"]},
    "workload": {"batch_size": 1, "tokens": 16, "threads": 1},
    "budgets": {"latency_ms": 1000},
    "objectives": ["latency_ms"],
}
ARCHS = [
    {"n_layers": 1, "d_model": 16, "heads": 2, "max_seq_len": 32},
    {"n_layers": 2, "d_model": 32, "heads": 2, "max_seq_len": 32},
    {"n_layers": 2, "d_model": 64, "heads": 4, "max_seq_len": 32},
]


@pytest.fixture
def predictor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    calibration.calibrate(
        8, spaces=("tiny_lm",), seq_lens=(8, 16), max_macs=5e6, options=FAST, repeat=2
    )
    return load_predictor(threads=1)


def test_front_trials_are_timed_alone_and_both_figures_stored(predictor):
    study = optuna.create_study(directions=["minimize", "minimize"])
    # Two feasible trials on the front, one over budget that must not be timed.
    for index, (arch, values, constraint) in enumerate(
        zip(ARCHS, ([3.0, 2.0], [2.5, 3.0], [2.0, 1.0]), (-0.5, -0.2, 0.4), strict=True)
    ):
        study.add_trial(
            optuna.trial.create_trial(
                values=values,
                user_attrs={"arch": arch, "status": "complete", "index": index},
                system_attrs={"constraints": [constraint]},
            )
        )
    profile = Profile.from_dict(PROFILE, source="tiny_latency.yaml")
    figures = remeasure_front(study, profile)

    assert set(figures) == {"0", "1"}
    for number, figure in figures.items():
        config = ArchConfig.from_dict(study.trials[int(number)].user_attrs["arch"])
        assert figure["measured_ms"] > 0
        expected = predictor.predict(config, tokens=16, batch=1).ms
        assert figure["predicted_ms"] == pytest.approx(expected)
        assert figure["tokens"] == 16 and figure["threads"] == 1
    assert study.user_attrs[STUDY_KEY] == figures
