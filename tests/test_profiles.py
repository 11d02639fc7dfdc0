"""Hardware profiles: built-ins, memory and latency metrics, validation of bad files, measure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from archsearch import ArchConfig, estimate_costs, load_profile
from archsearch.builtins import list_builtins
from archsearch.cli import main
from archsearch.costs import peak_bytes
from archsearch.costs import predictor as P
from archsearch.errors import InputError
from archsearch.profiles import COST_METRICS, Profile, parse_amount

ARCH: dict[str, Any] = {"vocab_size": 64, "max_seq_len": 64, "d_model": 32, "n_layers": 2}
GOOD: dict[str, Any] = {
    "name": "tiny_mem",
    "convention": {"tokens": 16, "exclude": ["embedding", "output"]},
    "workload": {"batch_size": 2, "tokens": 32},
    "budgets": {"train_memory": "4 MB", "macs": 10_000_000},
    "objectives": ["inference_memory", "macs"],
}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_builtin_profiles_load_with_their_metrics() -> None:
    names = list_builtins("hardware_profiles")
    for name in ("mobile_100M", "mobile_500M", "cpu_latency_local", "gpu16_train"):
        assert name in names
    profiles = {name: load_profile(name) for name in names}
    assert profiles["cpu_latency_local"].budgets == {"latency_ms": 25.0}
    assert profiles["cpu_latency_local"].needs_predictor
    assert profiles["gpu16_train"].budgets == {"train_memory": 15e9}
    assert profiles["gpu16_train"].workload.batch_size == 16
    assert profiles["edge_inference"].budgets == {"inference_memory": 64e6, "macs": 1e9}
    assert not profiles["mobile_100M"].needs_config
    for profile in profiles.values():
        assert profile.objectives and set(profile.budgets) <= set(COST_METRICS)
        Profile.from_dict(profile.raw, source=profile.source)  # round trip through the parser


@pytest.mark.parametrize(
    ("text", "unit", "value"),
    [
        ("16 GB", "bytes", 16e9),
        ("512MiB", "bytes", 512 * 2**20),
        ("64 kB", "bytes", 64e3),
        ("20 ms", "ms", 20.0),
        ("0.5 s", "ms", 500.0),
        ("250us", "ms", 0.25),
        ("100M", "MACs", 1e8),
        ("1.5G", "MACs", 1.5e9),
        ("16e9", "bytes", 16e9),  # YAML reads 16e9 as a string; it is still a number
        (3, "parameters", 3.0),
    ],
)
def test_amounts_with_units(text: Any, unit: str, value: float) -> None:
    assert parse_amount(text, unit, "budgets.x") == pytest.approx(value)


def test_memory_metrics_are_the_analytic_figures_for_the_workload(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path / "p.yaml", GOOD))
    config = ArchConfig.from_dict(ARCH)
    costs = estimate_costs(config, profile)
    measures = profile.measures(costs, config)
    assert measures["train_memory"] == peak_bytes.training_memory(config, 32, 2).peak
    assert measures["inference_memory"] == peak_bytes.inference_memory(config, 32, 2).peak
    assert measures["macs"] == costs.macs  # the convention's 16 tokens, not the workload's
    violations = profile.violations(costs, config)
    assert violations["train_memory"] == pytest.approx(measures["train_memory"] / 4e6 - 1)
    reasons = profile.over_budget(costs, config)
    assert [r.split()[0] for r in reasons] == [k for k, v in violations.items() if v > 0]
    with pytest.raises(ValueError, match="config="):
        profile.metric("train_memory", costs)
    assert profile.metric("macs", costs) == costs.macs  # costs-only metrics need no config


def test_latency_metrics_use_this_machines_predictor(tmp_path: Path) -> None:
    profile = load_profile("cpu_latency_local")
    config = ArchConfig.from_dict(ARCH)
    costs = estimate_costs(config, profile)
    with pytest.raises(InputError, match="archsearch calibrate"):
        profile.prepare()
    samples = []
    for d, layers, tokens in [(16, 1, 16), (32, 2, 64), (32, 1, 128), (16, 2, 32), (32, 2, 8)]:
        arch = ArchConfig.from_dict({**ARCH, "d_model": d, "n_layers": layers})
        features = P.latency_features(arch, tokens, 1)
        ms = 0.1 + 0.01 * sum(v for k, v in features.items() if k.startswith("macs."))
        samples.append(P.Sample(arch.to_dict(), tokens, 1, ms, 0.0, features))
    predictor = P.fit_predictor(samples)
    predictor.save(P.cache_path(threads=1))
    profile.prepare()
    prediction = predictor.predict(config, 128, 1)
    assert profile.metric("latency_ms", costs, config) == pytest.approx(prediction.ms)
    assert profile.metric("latency_ms_high", costs, config) == pytest.approx(prediction.high_ms)


BAD = [
    ({"budget": {"macs": 1}}, "budget"),
    ({"workload": {"batch_size": 2, "gpus": 1}}, "workload.gpus"),
    ({"workload": {"batch_size": 0}}, "workload.batch_size"),
    ({"workload": {"threads": 1.5}}, "workload.threads"),
    ({"workload": [1, 2]}, "workload"),
    ({"budgets": {"train_memory": -5}}, "budgets.train_memory"),
    ({"budgets": {"train_memory": True}}, "budgets.train_memory"),
    ({"budgets": {"train_memory": "20 ms"}}, "budgets.train_memory"),
    ({"budgets": {"latency_ms": "1 GB"}}, "budgets.latency_ms"),
    ({"budgets": {"macs": "lots"}}, "budgets.macs"),
    ({"budgets": {"macs": [1]}}, "budgets.macs"),
    ({"budgets": {"joules": 5}}, "budgets.joules"),
    ({"budgets": {}}, "budgets"),
    ({"objectives": ["macs", "happiness"]}, "objectives[1]"),
    ({"objectives": ["macs", "macs"]}, "objectives"),
    ({"convention": {"tokens": 0}}, "convention.tokens"),
]


@pytest.mark.parametrize(("change", "key"), BAD)
def test_bad_profile_files_name_the_file_and_key(
    tmp_path: Path, change: dict[str, Any], key: str
) -> None:
    data = {**GOOD, **change}
    if "budget" in change:
        del data["budgets"]
    path = write(tmp_path / "bad.yaml", data)
    with pytest.raises(InputError) as error:
        load_profile(path)
    assert error.value.source == str(path) and error.value.key == key
    assert str(error.value).startswith(f"{path}: {key}: ")


def test_the_cli_reports_a_bad_profile_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = write(tmp_path / "arch.yaml", ARCH)
    bad = write(tmp_path / "bad.yaml", {**GOOD, "budgets": {"train_memory": "3 parsecs"}})
    assert main(["measure", str(arch), "--profile", str(bad), "--no-latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "budgets.train_memory" in err
    with pytest.raises(SystemExit) as exit_:
        main(["measure", str(arch), "--seq-lens", "128,abc"])
    assert exit_.value.code == 2


def test_measure_reports_memory_and_a_sweep_over_sequence_lengths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arch = write(tmp_path / "arch.yaml", {**ARCH, "attention": "local", "window": 8})
    profile = write(tmp_path / "p.yaml", GOOD)
    args = ["measure", str(arch), "--profile", str(profile), "--no-latency", "--json"]
    assert main([*args, "--seq-lens", "16,128"]) == 0
    report = json.loads(capsys.readouterr().out)
    config = ArchConfig.from_dict({**ARCH, "attention": "local", "window": 8})
    assert report["memory"]["training"]["peak"] == peak_bytes.training_memory(config, 32, 2).peak
    assert report["budgets"]["train_memory"]["limit"] == 4e6
    assert report["latency"]["predicted"] is None  # nothing calibrated in this cache
    short, long = report["seq_lens"]
    assert (short["tokens"], long["tokens"]) == (16, 128)
    assert long["note"] == "max_seq_len raised from 64 to 128"
    assert (
        short["macs"] < long["macs"] and short["memory"]["inference"] < long["memory"]["inference"]
    )
    # window 8: each layer's cache stops at 9 positions, however long the context
    layers, keys_and_values, batch, width, f32 = 2, 2, 2, 32, 4
    assert (
        short["kv_cache"] == long["kv_cache"] == layers * keys_and_values * batch * 9 * width * f32
    )
    assert main([*args[:-1], "--seq-lens", "16"]) == 0
    text = capsys.readouterr().out
    assert "memory        inference" in text and "budget train_memory" in text


def test_measure_times_forward_and_generation(tmp_path: Path) -> None:
    from archsearch.costs.latency import TimingOptions
    from archsearch.measure import MeasureOptions, measure_arch

    fast = TimingOptions(warmup=1, min_repeats=2, max_repeats=3, min_time_s=0.0)
    options = MeasureOptions(generate=2, timing=fast, sweep_timing=fast)
    torch.manual_seed(0)
    report = measure_arch(
        ArchConfig.from_dict(ARCH),
        load_profile(write(tmp_path / "p.yaml", GOOD)),
        seq_lens=(8,),
        options=options,
        batch=1,
    )
    latency = report["latency"]
    assert set(latency["forward"]) == {"wall", "cpu"}
    assert latency["generation"]["method"] == "kv_cache" and latency["generation"]["tokens"] == 32
    assert report["seq_lens"][0]["measured_ms"] > 0 and report["workload"]["batch_size"] == 1


def test_candidates_are_remeasured_on_the_predictors_clock(tmp_path: Path) -> None:
    from archsearch.costs.latency import TimingOptions
    from archsearch.measure import remeasure_latency

    config = ArchConfig.from_dict(ARCH)
    profile = load_profile(write(tmp_path / "p.yaml", {**GOOD, "workload": {"tokens": 16}}))
    fast = TimingOptions(warmup=1, min_repeats=2, max_repeats=3, min_time_s=0.0)
    alone = remeasure_latency(config, profile, timing=fast)
    assert alone["predicted_ms"] is None and alone["clock"] == "wall"
    assert alone["measured_ms"] == alone["timings"]["wall"]["median_ms"] > 0
    features = P.latency_features(config, 16, 1)
    samples = [P.Sample(config.to_dict(), 16, 1, 1.0 + i / 10, 0.0, features) for i in range(5)]
    P.fit_predictor(samples, machine={"clock": "cpu"}).save(P.cache_path(threads=1))
    both = remeasure_latency(config, profile, timing=fast)
    assert both["clock"] == "cpu" and both["measured_ms"] == both["timings"]["cpu"]["median_ms"]
    assert both["predicted_ms"] == pytest.approx(1.2, rel=0.2)


def test_a_workload_longer_than_max_seq_len_is_costed_as_raised(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path / "p.yaml", GOOD))  # workload: 32 tokens
    config = ArchConfig.from_dict({**ARCH, "max_seq_len": 16, "attention": "linformer"})
    costs = estimate_costs(config, profile)
    raised = config.replace(max_seq_len=32)
    value = profile.metric("inference_memory", costs, config)
    assert value == peak_bytes.inference_memory(raised, 32, 2).peak
    assert value > peak_bytes.inference_memory(config, 32, 2).peak  # longer E and F projections
