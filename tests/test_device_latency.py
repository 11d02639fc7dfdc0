"""Latency of another device: HAT's and the generic CSV read (bad files answered in one line),
the predictor fitted with its artefacts flagged, a profile's verdicts and a run reading it, and
the collection script's CSV fitted back."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from archsearch import ArchConfig, load_profile, load_space
from archsearch.costs import device as D
from archsearch.costs.device_data import HAT_FEATURES, read_table
from archsearch.costs.stored import forget_loaded
from archsearch.errors import InputError
from archsearch.search.verdict import judge

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (or beside its worktrees' folder); the test skips without it
HAT_DATA = next(
    (p / "data" / "hat_latency" for p in (ROOT.parent / "shared", ROOT.parents[1] / "shared")
     if (p / "data" / "hat_latency").is_dir()),
    ROOT.parent / "shared" / "data" / "hat_latency",
)  # fmt: skip
PI_FILE = HAT_DATA / "wmt14ende_cpu_raspberrypi_all.csv"
HAT_COLUMNS = [*HAT_FEATURES, "latency_mean_encoder", "latency_mean_decoder"]
ARTEFACT_LINES = set(range(2, 14))  # the synthetic file's first 12 rows: encoder timed 10x slow


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    forget_loaded()
    return tmp_path / "cache"


def hat_like_rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    """Random SubTransformers of HAT's space, described by HAT's ten columns, timed by a known
    law (the work the columns imply, 1% noise), the first rows with a 10x encoder artefact."""
    rng = random.Random(seed)
    rows = []
    for index in range(n):
        enc_d, dec_d, dec_n = rng.choice([512, 640]), rng.choice([512, 640]), rng.randint(1, 6)
        values = {
            "encoder_embed_dim": enc_d,
            "encoder_layer_num": 6,
            "encoder_ffn_embed_dim_avg": np.mean(
                [rng.choice([1024, 2048, 3072]) for _ in "123456"]
            ),
            "encoder_self_attention_heads_avg": np.mean([rng.choice([4, 8]) for _ in "123456"]),
            "decoder_embed_dim": dec_d,
            "decoder_layer_num": dec_n,
            "decoder_ffn_embed_dim_avg": np.mean(
                [rng.choice([1024, 2048, 3072]) for _ in range(dec_n)]
            ),
            "decoder_self_attention_heads_avg": np.mean([rng.choice([4, 8]) for _ in range(dec_n)]),
            "decoder_ende_attention_heads_avg": np.mean([rng.choice([4, 8]) for _ in range(dec_n)]),
            "decoder_arbitrary_ende_attn_avg": np.mean(
                [rng.choice([1, 2, 3]) for _ in range(dec_n)]
            ),
        }
        # the law: milliseconds from the same quantities a device spends its time on
        encoder = 20 + 6 * enc_d * values["encoder_ffn_embed_dim_avg"] * 2 / 1e6 * 5
        encoder += 6 * enc_d * 512 * 4 / 1e6 * 5
        decoder = 300 + 150 * dec_n + dec_n * dec_d * values["decoder_ffn_embed_dim_avg"] / 1e4
        decoder += 30 * dec_n * values["decoder_arbitrary_ende_attn_avg"] + 0.4 * dec_d
        encoder *= math_noise(rng)
        decoder *= math_noise(rng)
        if index + 2 in ARTEFACT_LINES:
            encoder *= 10
        rows.append({**values, "latency_mean_encoder": encoder, "latency_mean_decoder": decoder})
    return rows


def math_noise(rng: random.Random) -> float:
    return float(np.exp(rng.gauss(0.0, 0.01)))


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_artefacts_are_flagged_and_the_law_recovered(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "hat.csv", hat_like_rows(300), HAT_COLUMNS)
    table = read_table(path)
    assert table.format == "hat" and len(table.rows) == 300
    predictor = D.fit_device(table, "synthetic")
    flagged = {row["line"] for row in predictor.flagged}
    assert flagged == ARTEFACT_LINES, "exactly the planted rows, nothing else"
    runs = D.flagged_runs(predictor.flagged)
    assert len(runs) == 1 and runs[0]["parts"] == ["encoder"]
    assert 9 < runs[0]["median_ratio"]["encoder"] < 11
    report = predictor.validation["parts"]
    for part in ("encoder", "decoder", "total"):
        assert report[part]["predictor"]["mape"] < 0.02  # the noise is 1%
    # the law multiplies columns (layers x width x FFN width): a linear model cannot follow it
    ours, linear = report["total"]["predictor"], report["total"]["linear"]
    assert ours["mape"] < 0.6 * linear["mape"] and ours["mae_ms"] < 0.6 * linear["mae_ms"]


@pytest.mark.skipif(not PI_FILE.exists(), reason="HAT's measurements are not beside the repo")
def test_hat_raspberry_pi_file(cache: Path) -> None:
    table = read_table(PI_FILE)
    values = [row.values["decoder_arbitrary_ende_attn_avg"] for row in table.rows]
    # the mean NUMBER of last encoder layers read: single-layer decoders hold exactly 1, 2 or 3
    single = {row.values["decoder_arbitrary_ende_attn_avg"] for row in table.rows
              if row.values["decoder_layer_num"] == 1}  # fmt: skip
    assert min(values) == 1.0 and max(values) == 3.0 and single == {1.0, 2.0, 3.0}
    predictor = D.fit_device(table, "raspberrypi")
    first = {row["line"] for row in predictor.flagged if row["line"] <= 111}
    assert len(first) >= 100, "the known block of 10x encoder timings at the top of the file"
    top = D.flagged_runs(predictor.flagged)[0]
    assert top["first_line"] == 2 and top["rows"] >= 100 and top["median_ratio"]["encoder"] > 5
    total = predictor.validation["parts"]["total"]
    assert total["predictor"]["mae_ms"] < 100  # HAT reports about 0.1 s
    assert total["predictor"]["mae_ms"] < total["linear"]["mae_ms"]
    assert total["predictor"]["mape"] < total["linear"]["mape"]


def test_hat_values_of_an_arch_config() -> None:
    config = ArchConfig.from_dict(
        {
            "task": "seq2seq",
            "d_model": 512,
            "encoder_d_model": 640,
            "n_encoder_layers": 6,
            "n_layers": 3,
            "attn_dim": 512,
            "heads": [4, 8, 8],
            "cross_heads": [8, None, 4],
            "cross_layers": [1, 2, 3],
            "ffn_dim": [1024, 2048, 3072],
            "encoder_heads": 4,
            "encoder_ffn_dim": [3072, 3072, 1024, 1024, 2048, 2048],
        }
    )
    values = D.hat_values(config)
    assert values == {
        "encoder_embed_dim": 640.0,
        "encoder_layer_num": 6.0,
        "encoder_ffn_embed_dim_avg": 2048.0,
        "encoder_self_attention_heads_avg": 4.0,
        "decoder_embed_dim": 512.0,
        "decoder_layer_num": 3.0,
        "decoder_ffn_embed_dim_avg": 2048.0,
        "decoder_self_attention_heads_avg": 20 / 3,
        "decoder_ende_attention_heads_avg": 20 / 3,  # the unset one takes its self heads (8)
        "decoder_arbitrary_ende_attn_avg": 2.0,
    }
    with pytest.raises(InputError, match="encoder-decoder"):
        D.hat_values(ArchConfig.from_dict({"n_layers": 2, "d_model": 64}))
    narrow = {"task": "seq2seq", "n_layers": 1, "n_encoder_layers": 1, "d_model": 512}
    with pytest.raises(InputError, match="q/k/v width 512"):
        D.hat_values(ArchConfig.from_dict({**narrow, "attn_dim": 256}))


def fitted_device(cache: Path, tmp_path: Path, name: str = "pi_test", scale: float = 1.0) -> Any:
    rows = hat_like_rows(120)
    for row in rows:
        row["latency_mean_encoder"] *= scale
        row["latency_mean_decoder"] *= scale
    path = write_csv(tmp_path / f"{name}.csv", rows, HAT_COLUMNS)
    predictor = D.fit_device(read_table(path), name)
    predictor.save(D.device_path(name))
    return predictor


def device_profile(tmp_path: Path, device: str, budget_ms: float) -> Path:
    profile = yaml.safe_load((ROOT / "hardware_profiles" / "raspberrypi_hat.yaml").read_text())
    profile.update(name=f"{device}_test", budgets={"latency_ms": budget_ms})
    profile["workload"]["device"] = device
    path = tmp_path / f"{device}_profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def test_verdicts_over_hat_space_use_the_device_predictor(cache: Path, tmp_path: Path) -> None:
    space = load_space("hat")
    profile = load_profile(device_profile(tmp_path, "pi_test", 2500))
    with pytest.raises(InputError, match="calibrate --from-csv"):
        profile.prepare()  # nothing fitted yet: one line saying how
    predictor = fitted_device(cache, tmp_path)
    profile.prepare()
    rng = random.Random(0)
    verdicts = []
    for _ in range(40):
        values = space.sample(rng)
        if space.violations(values):
            continue
        verdict = judge(space, profile, values)
        assert verdict.config is not None
        expected = predictor.predict(verdict.config, 30).ms
        assert (expected > 2500) == bool(verdict.over_budget)
        verdicts.append(bool(verdict.over_budget))
    assert 0 < sum(verdicts) < len(verdicts), "the budget splits the space"
    fitted_device(cache, tmp_path, scale=10.0)  # a device ten times slower, same name
    os.utime(D.device_path("pi_test"), (0, 1e9))  # a new stamp, whatever the clock's resolution
    slower = [bool(judge(space, profile, space.sample(random.Random(0))).over_budget)]
    assert slower == [True]
    with pytest.raises(InputError, match="measured at 30 tokens"):
        D.require_device_predictor("pi_test").predict(verdict.config, 128)
    from archsearch.measure import MeasureOptions, measure_arch

    report = measure_arch(verdict.config, profile, options=MeasureOptions(latency=False))
    on_device = report["latency"]["device"]
    slow = D.require_device_predictor("pi_test")
    parts = slow.predict_parts(verdict.config, 30)
    assert on_device["parts_ms"] == parts and on_device["ms"] == parts["total"]
    assert parts["total"] == pytest.approx(parts["encoder"] + parts["decoder"])
    assert report["budgets"]["latency_ms"]["value"] == parts["total"]


NO_TORCH = """
import json, random, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked")
sys.meta_path.insert(0, NoTorch())
from archsearch import load_profile, load_space
from archsearch.costs.device import fit_device
from archsearch.costs.device_data import read_table
from archsearch.search.verdict import judge
fit_device(read_table(sys.argv[1]), "pi_test").save(__import__("pathlib").Path(sys.argv[3]))
space, profile = load_space("hat"), load_profile(sys.argv[2])
values = space.sample(random.Random(0))
verdict = judge(space, profile, values)
print(json.dumps([profile.metric("latency_ms", verdict.costs, verdict.config),
                  "torch" in sys.modules]))
"""


def test_fit_and_verdicts_need_no_torch(cache: Path, tmp_path: Path) -> None:
    """Fitting a device predictor and judging candidates by it run where torch cannot load."""
    path = write_csv(tmp_path / "hat.csv", hat_like_rows(120), HAT_COLUMNS)
    profile = device_profile(tmp_path, "pi_test", 2500)
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(path), str(profile), str(D.device_path("pi_test"))],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ARCHSEARCH_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    latency, torch_loaded = json.loads(result.stdout)
    space = load_space("hat")
    config = space.to_config(space.sample(random.Random(0)))
    assert not torch_loaded
    assert latency == pytest.approx(D.require_device_predictor("pi_test").predict(config, 30).ms)


def archsearch(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "archsearch", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})},
    )


BAD_FILES = {
    "missing column": ("encoder_embed_dim,latency_ms\n640,3\n", "line 1", "tokens"),
    "wrong field count": (",".join(HAT_COLUMNS) + "\n" + "1," * 5 + "\n", "line 2", "field"),
    "not a number": (
        ",".join(HAT_COLUMNS) + "\n" + ",".join(["640", "6", "x"] + ["1"] * 9) + "\n",
        "line 2, column encoder_ffn_embed_dim_avg",
        "not a number",
    ),
    "HAT's raw -1 coding": (
        ",".join(HAT_COLUMNS) + "\n" + ",".join(["640", "6"] + ["4"] * 7 + ["-1", "5", "9"]) + "\n",
        "decoder_arbitrary_ende_attn_avg",
        "1-3",
    ),
    "unknown generic column": (
        "d_model,colour,latency_ms,tokens\n64,red,2,30\n",
        "line 1",
        "colour",
    ),
    "per-layer gap": (
        "n_layers,d_model,heads.0,heads.2,latency_ms,tokens\n3,64,2,2,1,30\n",
        "line 2, column heads.1",
        "empty",
    ),
    "bad arch value": (
        "n_layers,d_model,heads,latency_ms,tokens\n2,64,3,1,30\n",
        "line 2",
        "heads",
    ),
    "too few rows": ("n_layers,d_model,latency_ms,tokens\n2,64,1.5,30\n", "data row", "at least"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_csv_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, *fragments = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    from archsearch.cli import main

    with pytest.raises(InputError) as caught:
        read_table(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message
    if case == "missing column":  # once through the real command line: status 2, one line
        result = archsearch("calibrate", "--from-csv", str(path), "--device", "x")
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.stderr and str(path) in result.stderr
        assert main(["calibrate", "--device", "x"]) == 2  # no CSV: refused before anything


COLLECT_SPACE = {
    "name": "collect_micro",
    "task": "causal_lm",
    "fixed": {"vocab_size": 64, "max_seq_len": 32, "attention": "full", "ffn": "dense"},
    "params": {
        "n_layers": {"int": [1, 3]},
        "d_model": {"choice": [16, 32, 48]},
        "heads": {"choice": [1, 2], "per_layer": True},
        "ffn_ratio": {"choice": [1, 2], "per_layer": True},
    },
}
BLOCK_ALL_BUT_TORCH = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("optuna", "ray", "sqlalchemy", "rich"):
            raise ImportError(f"{name} is not installed on this device")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_collect_on_a_torch_only_device_then_fit(cache: Path, tmp_path: Path) -> None:
    space_path = tmp_path / "collect_micro.yaml"
    space_path.write_text(yaml.safe_dump(COLLECT_SPACE))
    out = tmp_path / "device.csv"
    script = ROOT / "scripts" / "collect_latency.py"
    argv = ["--space", str(space_path), "--samples", "5", "--tokens", "16", "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_ALL_BUT_TORCH, str(script), *argv],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    table = read_table(out)
    assert table.format == "generic" and len(table.rows) == 5
    space, rng = load_space(space_path), random.Random(0)  # the script's draws, again
    expected = []
    while len(expected) < 5:
        values = space.sample(rng)
        if not space.violations(values):
            expected.append(space.to_config(values))
    assert [row.arch for row in table.rows] == expected
    assert all(row.tokens == 16 and row.batch == 1 and row.latency_ms > 0 for row in table.rows)
    assert all(int(row.notes["repeats"]) >= 5 for row in table.rows)  # measure's rules
    fitted = archsearch("calibrate", "--from-csv", str(out), "--device", "board", "--json")
    assert fitted.returncode == 0, fitted.stderr
    stored = D.load_device_predictor("board")
    assert stored is not None and stored.kind == "arch"
    assert json.loads(fitted.stdout)["source"]["rows"] == 5
    for row in table.rows:
        predicted = stored.predict(row.arch, 16).ms
        assert 0 < predicted < 20 * max(r.latency_ms for r in table.rows)


@pytest.mark.slow
def test_run_searches_hat_under_a_device_budget(cache: Path, tmp_path: Path) -> None:
    """`archsearch run --space hat --profile <device profile>`: every scored trial's latency
    objective is the device predictor's figure, and the budget rejects what it must."""
    predictor = fitted_device(cache, tmp_path)
    profile = device_profile(tmp_path, "pi_test", 2500)
    recipe = tmp_path / "params.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "seq2seq_params",
                "task": "seq2seq",
                "data": "synthetic:reverse",
                "tokenizer": "bytes",
                "seq_len": 16,
                "batch_size": 2,
                "seed": 0,
                "proxy": "params",
            }
        )
    )
    storage = f"sqlite:///{tmp_path / 'run.db'}"
    env = {"ARCHSEARCH_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    result = archsearch(
        *("run", "--space", "hat", "--profile", str(profile), "--evaluator", str(recipe)),
        *("--trials", "4", "--workers", "1", "--sampler", "random", "--storage", storage),
        env=env,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scored" in result.stdout and "MACs=" not in result.stdout  # not an objective here
    import optuna

    study = optuna.load_study(study_name="hat.pi_test_test.seq2seq_params", storage=storage)
    scored = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "infeasible"]
    assert len(scored) >= 4
    for trial in scored:
        config = ArchConfig.from_dict(trial.user_attrs["arch"])
        assert config.task == "seq2seq"
        assert trial.values[1] == pytest.approx(predictor.predict(config, 30).ms)
        assert trial.values[1] <= 2500
    for trial in rejected:
        assert "latency_ms" in trial.user_attrs["reason"]


def test_generic_csv_round_trips_hat_architectures(tmp_path: Path) -> None:
    """Every key HAT's space sets (widths apart, cross-attention per layer, bias, post-norm)
    survives the generic format; rows of different depths share one header."""
    from archsearch.costs.device_data import generic_record, write_generic

    space, rng = load_space("hat"), random.Random(3)
    configs = []
    while len(configs) < 8:
        values = space.sample(rng)
        if not space.violations(values):
            configs.append(space.to_config(values))
    records = [generic_record(c, 30, 1, 100.0 + i) for i, c in enumerate(configs)]
    table = read_table(write_generic(tmp_path / "hat_generic.csv", records))
    assert [row.arch for row in table.rows] == configs
    assert [row.latency_ms for row in table.rows] == [100.0 + i for i in range(8)]
    assert len({c.n_layers for c in configs}) > 1
