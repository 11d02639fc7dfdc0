"""Calibration on this machine: a (tiny) real calibration, the report, the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archsearch import ArchConfig
from archsearch.cli import main
from archsearch.costs import calibration
from archsearch.costs.analytic import analytic_costs
from archsearch.costs.convention import CountingConvention
from archsearch.costs.latency import TimingOptions
from archsearch.costs.predictor import cache_path, load_predictor

FAST = TimingOptions(warmup=1, min_repeats=2, max_repeats=3, min_time_s=0.0, clock="cpu")
TINY_ARCH = {"vocab_size": 64, "max_seq_len": 64, "d_model": 16, "n_layers": 1, "heads": 2}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def small_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Calibrate and report on tiny workloads (the command reads these module defaults)."""
    monkeypatch.setattr(calibration, "DEFAULT_SEQ_LENS", (8, 16))
    monkeypatch.setattr(calibration, "MAX_SAMPLE_MACS", 5e6)
    monkeypatch.setattr(calibration, "BASE_ARCH", TINY_ARCH)
    monkeypatch.setattr(
        calibration,
        "FAMILY_ARCHS",
        {"attention=full": {}, "attention=local": {"attention": "local", "window": 4}},
    )


def test_workloads_are_reproducible_and_affordable() -> None:
    spaces = ("tiny_lm", calibration.FAMILIES)
    first = calibration.sample_timing_cases(8, seed=3, spaces=spaces, max_macs=2e7)
    again = calibration.sample_timing_cases(8, seed=3, spaces=spaces, max_macs=2e7)
    assert [(w.config, w.tokens, w.batch) for w in first] == [
        (w.config, w.tokens, w.batch) for w in again
    ]
    for workload in first:
        convention = CountingConvention(tokens=workload.tokens, exclude=())
        assert analytic_costs(workload.config, convention).total_macs * workload.batch <= 2e7
        assert workload.tokens <= workload.config.max_seq_len
    for workload in first[1::2]:  # drawn from FAMILIES: one family in every layer
        layers = workload.config.layers
        assert len({(layer.attention, layer.ffn) for layer in layers}) == 1


def test_calibration_stores_a_predictor_with_its_validation(private_cache: Path) -> None:
    predictor = calibration.calibrate(
        8,
        spaces=("tiny_lm",),
        seq_lens=(8, 16),
        max_macs=5e6,
        options=FAST,
        repeat=2,
    )
    path = cache_path(threads=1)
    assert path.is_file() and path.parent.parent == private_cache
    loaded = load_predictor(threads=1)
    assert loaded is not None and loaded.features == predictor.features
    validation = loaded.validation
    assert validation["samples"] == 8 and validation["mape"] >= 0
    assert validation["repeatability"]["samples"] == 2
    assert loaded.machine["clock"] == "cpu" and loaded.machine["threads"] == 1
    assert all(s.median_ms > 0 for s in loaded.samples)


def test_family_check_puts_figures_next_to_measurements() -> None:
    config = ArchConfig.from_dict({**TINY_ARCH, "attention": "local", "window": 4})
    row = calibration.check_family(
        config, memory_tokens=32, memory_batch=2, latency_tokens=16, options=FAST
    )
    assert row["macs"]["analytic"] == row["macs"]["measured"]
    for workload in ("inference", "training"):
        figures = row["memory"][workload]
        assert abs(figures["analytic"] / figures["measured"] - 1) <= 0.10
    assert row["latency"]["measured"]["median_ms"] > 0
    assert "predicted" not in row["latency"]  # no predictor in this private cache


def test_calibrate_command_fits_then_reports(
    small_defaults: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calibrate", "--samples", "6", "--space", "tiny_lm", "--json"]) == 0
    fitted = json.loads(capsys.readouterr().out)
    assert fitted["predictor"]["validation"]["samples"] == 6
    assert fitted["predictor"]["interval_factor_90"] >= 1.0
    assert main(["calibrate", "--report", "--no-fit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    assert set(report["families"]) == {"attention=full", "attention=local"}
    full, local = report["families"]["attention=full"], report["families"]["attention=local"]
    assert full["latency"]["predicted"]["ms"] > 0 and full["macs"]["error"] == 0
    # tiny_lm has full attention only: local is measured, and not guessed at
    assert "predicted" not in local["latency"] and "calibrated without" in local["latency"]["note"]
    assert report["summary"]["max_abs_inference_memory_error"] <= 0.10
    assert main(["calibrate", "--report", "--no-fit"]) == 0
    text = capsys.readouterr().out
    assert "attention=local" in text and "held-out error" in text


def test_calibrate_command_input_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--no-fit"]) == 2
    assert "no stored predictor" in capsys.readouterr().err
    assert main(["calibrate", "--space", "no_such_space"]) == 2
    assert "no_such_space" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "--samples", "0"])
    assert exc.value.code == 2
