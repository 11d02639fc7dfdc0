"""Latency predictor: the fit recovers known models, the per-machine cache round-trips."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from archsearch import ArchConfig
from archsearch.costs import predictor as P
from archsearch.errors import InputError
from archsearch.space import load_space


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def brute_force_nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Independent reference: least squares on every support set, keep the best feasible."""
    n = a.shape[1]
    best, best_x = math.inf, np.zeros(n)
    for size in range(n + 1):
        for support in itertools.combinations(range(n), size):
            x = np.zeros(n)
            if support:
                x[list(support)] = np.linalg.lstsq(a[:, support], b, rcond=None)[0]
            if (x >= -1e-12).all():
                residual = float(np.linalg.norm(a @ x - b))
                if residual < best - 1e-12:
                    best, best_x = residual, x
    return best_x


@pytest.mark.parametrize("seed", range(6))
def test_nnls_finds_the_constrained_optimum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(12, 5))
    b = rng.normal(size=12)
    x = P.nnls(a, b)
    assert (x >= 0).all()
    np.testing.assert_allclose(x, brute_force_nnls(a, b), atol=1e-8)


def test_relative_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([0.5, 0.0, 2.0, 0.03])  # one feature does not matter
    x = rng.uniform(0.1, 10.0, size=(40, 4)) * np.array([1, 1, 1, 100])
    y = x @ truth
    scale, weights = P.fit_relative(x, y, ridge=0.0)
    np.testing.assert_allclose(weights / scale, truth, rtol=1e-6, atol=1e-9)


def random_configs(
    count: int, seed: int = 0, space_name: str = "efficient_lm"
) -> list[tuple[ArchConfig, int, int]]:
    space = load_space(space_name)
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        values = space.sample(rng)
        if space.violations(values):
            continue
        try:
            config = space.to_config(values)
        except InputError:
            continue
        out.append((config, rng.choice([16, 64, 256]), rng.choice([1, 2])))
    return out


def synthetic_samples(
    truth: dict[str, float],
    count: int,
    noise: float = 0.0,
    seed: int = 0,
    space_name: str = "efficient_lm",
) -> list[P.Sample]:
    """Samples whose latency is a known function of the features (times lognormal noise)."""
    rng = np.random.default_rng(seed)
    samples = []
    for config, tokens, batch in random_configs(count, seed, space_name):
        features = P.latency_features(config, tokens, batch)
        ms = sum(truth.get(k, 0.0) * v for k, v in features.items())
        ms *= math.exp(rng.normal(0, noise)) if noise else 1.0
        samples.append(P.Sample(config.to_dict(), tokens, batch, ms, 0.0, features))
    return samples


TRUTH = {
    "calls": 0.3,
    "macs.attention.full": 0.02,
    "macs.attention.local": 0.04,
    "macs.ffn.dense": 0.015,
    "macs.other": 0.01,
    "layers.attention.lsh": 1.5,
    "elements": 2.0,
}


def test_fit_on_synthetic_latencies_recovers_the_model_and_predicts_new_configs() -> None:
    predictor = P.fit_predictor(synthetic_samples(TRUTH, 60))
    assert predictor.validation["mape"] < 0.02
    coefficients = predictor.coefficients()
    for name, value in TRUTH.items():
        assert coefficients[name] == pytest.approx(value, rel=0.05), name
    for config, tokens, batch in random_configs(5, seed=99):
        features = P.latency_features(config, tokens, batch)
        expected = sum(TRUTH.get(k, 0.0) * v for k, v in features.items())
        assert predictor.predict(config, tokens, batch).ms == pytest.approx(expected, rel=0.05)


def test_uncertainty_comes_from_held_out_residuals() -> None:
    noisy = P.fit_predictor(synthetic_samples(TRUTH, 60, noise=0.2, seed=1))
    assert 0.1 < noisy.sigma_log < 0.4  # near the 0.2 of the noise put in
    config, tokens, batch = random_configs(1, seed=5)[0]
    prediction = noisy.predict(config, tokens, batch)
    factor = math.exp(1.645 * noisy.sigma_log)
    assert prediction.low_ms == pytest.approx(prediction.ms / factor)
    assert prediction.high_ms == pytest.approx(prediction.ms * factor)


def test_saved_file_carries_its_features_and_normalisation(cache: Path) -> None:
    predictor = P.fit_predictor(synthetic_samples(TRUTH, 30), machine={"cpu": "test"})
    path = predictor.save(P.cache_path(threads=1))
    data = json.loads(path.read_text())
    assert data["features"] == list(predictor.features)
    assert len(data["scale"]) == len(data["weights"]) == len(data["features"])
    # reorder the columns in the file: predictions follow the names, not the positions
    order = list(reversed(range(len(data["features"]))))
    for key in ("features", "scale", "weights"):
        data[key] = [data[key][i] for i in order]
    path.write_text(json.dumps(data))
    loaded = P.load_predictor(threads=1)
    assert loaded is not None
    for config, tokens, batch in random_configs(4, seed=3):
        assert loaded.predict(config, tokens, batch).ms == pytest.approx(
            predictor.predict(config, tokens, batch).ms, rel=1e-12
        )
    assert len(loaded.samples) == 30


def test_cache_is_keyed_by_cpu_threads_and_torch(cache: Path) -> None:
    key = P.cache_key(4, cpu="AMD EPYC 7R13 Processor", torch_version="2.13.0+cpu")
    assert key == "amd-epyc-7r13-processor__t4__torch-2.13.0+cpu"
    assert P.cache_key(1, cpu="x", torch_version="1") != P.cache_key(2, cpu="x", torch_version="1")
    assert P.cache_key(1, cpu="x", torch_version="1") != P.cache_key(1, cpu="y", torch_version="1")
    assert P.cache_path(2).parent == cache / "latency"
    assert P.load_predictor(threads=3) is None
    with pytest.raises(InputError, match="archsearch calibrate --threads 3"):
        P.require_predictor(threads=3)


def test_unreadable_file_is_an_input_error(cache: Path) -> None:
    path = P.cache_path(threads=1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(InputError, match="calibrate"):
        P.load_predictor(threads=1)


def test_a_family_unseen_in_calibration_is_refused() -> None:
    predictor = P.fit_predictor(synthetic_samples(TRUTH, 20, space_name="tiny_lm"))
    assert not any("performer" in name for name in predictor.features)
    config: dict[str, Any] = {"vocab_size": 64, "d_model": 32, "n_layers": 1, "heads": 2}
    predictor.predict(ArchConfig.from_dict(config), 16)
    with pytest.raises(InputError, match="calibrated without"):
        predictor.predict(ArchConfig.from_dict({**config, "attention": "performer"}), 16)
