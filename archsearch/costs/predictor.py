"""Latency predictor: forward latency on this machine, in milliseconds, from analytic features,
with an uncertainty per prediction.

Model. Latency is a sum: a fixed cost per call, a per-layer overhead that depends on the family
(how many operators it dispatches), and work proportional to each family's multiply-adds (their
kernels run at different speeds: fused attention, chunked batched matmuls, gathers). So the
predictor is linear in those features with non-negative coefficients (``nnls``), fitted to
minimise *relative* error (every row divided by its measured latency), with a small ridge
penalty; features are normalised by their root mean square in the fitted data, and that
normalisation is stored with the coefficients.

Uncertainty. ``sigma_log`` is the standard deviation of log(measured / predicted) over held-out
folds of the calibration data; a prediction's 90% interval is ``ms * exp(+-1.645 sigma_log)``.

Storage. One JSON file per machine in ``~/.cache/archsearch/latency/<key>.json`` (or under
``$ARCHSEARCH_CACHE_DIR``), key = CPU model + thread count + torch version: feature names,
normalisation, coefficients, sigma, cross-validation figures and the samples themselves, written
together so they cannot drift apart. Predicting takes about a millisecond (no model is built).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archsearch.cache import cache_root
from archsearch.config import ArchConfig
from archsearch.costs.analytic import analytic_costs
from archsearch.costs.convention import CountingConvention
from archsearch.costs.stored import load_stored
from archsearch.errors import InputError
from archsearch.families import BlockContext, attention_spec, ffn_spec, memory_spec

FORMAT = 1
Z90 = 1.645  # two-sided 90% interval of a normal distribution
RIDGE = 1e-3
OTHER_PARTS = (
    "embedding_projection",
    "cross_attention",
    "memory",
    "retrieval",
    "output_projection",
    "output",
)


# ---- features ----------------------------------------------------------------------------------


def latency_features(config: ArchConfig, tokens: int, batch: int = 1) -> dict[str, float]:
    """Named features of one forward over ``batch`` x ``tokens``: per-family layer counts and
    multiply-adds (millions), other MACs, and element-wise work (millions of activations)."""
    features: dict[str, float] = {"calls": 1.0}

    def add(name: str, value: float) -> None:
        features[name] = features.get(name, 0.0) + value

    extra = memory_spec(config.memory).extra_keys(config)
    stacks = [(config.layers, True, False, extra)]
    if config.task == "seq2seq":
        stacks.append((config.encoder_layers, False, True, 0))
    width = 0.0
    for layers, causal, encoder, keys in stacks:
        for layer in layers:
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            attention, ffn = attention_spec(layer.attention), ffn_spec(layer.ffn)
            add(f"layers.attention.{layer.attention}", attention.dispatch_units(ctx))
            add(f"layers.ffn.{layer.ffn}", ffn.dispatch_units(ctx))
            add(
                f"macs.attention.{layer.attention}", batch * attention.macs(ctx, tokens, keys) / 1e6
            )
            add(f"macs.ffn.{layer.ffn}", batch * ffn.macs(ctx, tokens, 0) / 1e6)
            width += ctx.d_model + layer.hidden_dim(ctx.d_model)
    costs = analytic_costs(config, CountingConvention(tokens=tokens, exclude=()))
    add("macs.other", batch * sum(costs.macs_by_part[p] for p in OTHER_PARTS) / 1e6)
    add("elements", batch * tokens * width / 1e6)
    return features


# ---- non-negative least squares ----------------------------------------------------------------


def nnls(a: np.ndarray, b: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """min ||a x - b|| subject to x >= 0 (Lawson and Hanson's active-set method)."""
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    gradient = a.T @ (b - a @ x)
    for _ in range(3 * n + 10):
        if passive.all() or gradient[~passive].max(initial=-np.inf) <= tol:
            break
        candidates = np.where(~passive, gradient, -np.inf)
        passive[int(np.argmax(candidates))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > tol).all():
                x = z
                break
            blocking = passive & (z <= tol)
            step = np.min(x[blocking] / np.maximum(x[blocking] - z[blocking], 1e-300))
            x = x + step * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        gradient = a.T @ (b - a @ x)
    return x


def _design(samples: Sequence[Sample], names: Sequence[str]) -> np.ndarray:
    return np.array([[s.features.get(n, 0.0) for n in names] for s in samples], dtype=float)


def fit_relative(
    x: np.ndarray, y: np.ndarray, ridge: float = RIDGE
) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative weights minimising relative squared error (plus a ridge on the normalised
    weights). Returns (scale, weights): predictions are ``(x / scale) @ weights``."""
    relative = x / y[:, None]
    scale = np.sqrt((relative**2).mean(0))
    scale[scale == 0] = 1.0
    a = relative / scale
    a = np.vstack([a, math.sqrt(ridge * len(y)) * np.eye(x.shape[1])])
    b = np.concatenate([np.ones(len(y)), np.zeros(x.shape[1])])
    return scale, nnls(a, b)


# ---- the predictor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured configuration: what was timed and its median latency."""

    arch: dict[str, Any]
    tokens: int
    batch: int
    median_ms: float
    iqr_ms: float
    features: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "tokens": self.tokens,
            "batch": self.batch,
            "median_ms": self.median_ms,
            "iqr_ms": self.iqr_ms,
            "features": self.features,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        return cls(
            arch=data["arch"],
            tokens=int(data["tokens"]),
            batch=int(data["batch"]),
            median_ms=float(data["median_ms"]),
            iqr_ms=float(data["iqr_ms"]),
            features={k: float(v) for k, v in data["features"].items()},
        )


@dataclass(frozen=True)
class Prediction:
    """Predicted latency and its 90% interval (multiplicative, from held-out residuals)."""

    ms: float
    low_ms: float
    high_ms: float
    sigma_log: float

    def to_dict(self) -> dict[str, float]:
        return {
            "ms": self.ms,
            "low_ms": self.low_ms,
            "high_ms": self.high_ms,
            "sigma_log": self.sigma_log,
        }


@dataclass(frozen=True)
class LatencyPredictor:
    """Fitted model: feature names, their normalisation, weights, held-out error."""

    features: tuple[str, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    sigma_log: float
    machine: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    samples: tuple[Sample, ...] = ()

    def predict(self, config: ArchConfig, tokens: int, batch: int = 1) -> Prediction:
        values = latency_features(config, tokens, batch)
        unknown = sorted(set(values) - set(self.features))
        if unknown:
            raise InputError(
                f"the latency predictor for this machine was calibrated without {unknown[0]}; "
                "run `archsearch calibrate` (with a space that includes it)",
                key="latency",
            )
        ms = sum(w * values.get(n, 0.0) / s for n, s, w in zip(*self._columns(), strict=True))
        spread = math.exp(Z90 * self.sigma_log)
        return Prediction(ms, ms / spread, ms * spread, self.sigma_log)

    def _columns(self) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
        return self.features, self.scale, self.weights

    def coefficients(self) -> dict[str, float]:
        """Milliseconds per unit of each feature."""
        return {n: w / s for n, s, w in zip(*self._columns(), strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "target": "forward latency, ms (median of timed repeats)",
            "machine": self.machine,
            "features": list(self.features),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "sigma_log": self.sigma_log,
            "validation": self.validation,
            "samples": [s.to_dict() for s in self.samples],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyPredictor:
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported predictor format {data.get('format')!r}")
        names, scale, weights = data["features"], data["scale"], data["weights"]
        if not len(names) == len(scale) == len(weights):
            raise ValueError("features, scale and weights differ in length")
        return cls(
            features=tuple(names),
            scale=tuple(float(v) for v in scale),
            weights=tuple(float(v) for v in weights),
            sigma_log=float(data["sigma_log"]),
            machine=dict(data.get("machine", {})),
            validation=dict(data.get("validation", {})),
            samples=tuple(Sample.from_dict(s) for s in data.get("samples", [])),
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1))
        temporary.replace(path)  # atomic: a reader never sees half a file
        return path

    @classmethod
    def load(cls, path: Path) -> LatencyPredictor:
        return cls.from_dict(json.loads(path.read_text()))


def fit_predictor(
    samples: Sequence[Sample], *, folds: int = 5, seed: int = 0, machine: dict | None = None
) -> LatencyPredictor:
    """Fit on every sample; ``validation`` holds ``folds``-fold cross-validated errors
    (each sample predicted by a model that never saw it), which also set ``sigma_log``."""
    if len(samples) < max(folds, 4):
        raise ValueError(f"need at least {max(folds, 4)} samples, got {len(samples)}")
    names = sorted({n for s in samples for n in s.features})
    x = _design(samples, names)
    y = np.array([s.median_ms for s in samples])
    order = np.random.default_rng(seed).permutation(len(samples))
    held_out = np.empty(len(samples))
    for fold in range(folds):
        test = order[fold::folds]
        train = np.setdiff1d(order, test)
        scale, weights = fit_relative(x[train], y[train])
        held_out[test] = (x[test] / scale) @ weights
    held_out = np.maximum(held_out, 1e-9)
    ratio = np.log(y / held_out)
    scale, weights = fit_relative(x, y)
    errors = np.abs(held_out - y) / y
    validation = {
        "method": f"{folds}-fold cross-validation over configurations",
        "samples": len(samples),
        "mape": float(errors.mean()),
        "median_ape": float(np.median(errors)),
        "p90_ape": float(np.quantile(errors, 0.9)),
        "sigma_log": float(ratio.std()),
        "predicted_ms": held_out.tolist(),
    }
    return LatencyPredictor(
        features=tuple(names),
        scale=tuple(float(v) for v in scale),
        weights=tuple(float(v) for v in weights),
        sigma_log=float(ratio.std()),
        machine=dict(machine or {}),
        validation=validation,
        samples=tuple(samples),
    )


# ---- per-machine cache -------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what platform reports)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    return {
        "cpu": cpu_model(),
        "threads": threads,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def installed_torch_version() -> str:
    """torch's version as installed, read without importing torch (a latency verdict needs the
    predictor's file name, not torch); ``torch.__version__`` where the metadata is missing."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        import torch

        return str(torch.__version__)


def cache_key(threads: int, cpu: str | None = None, torch_version: str | None = None) -> str:
    """``<cpu>__t<threads>__torch-<version>``, lower-case, filesystem-safe."""
    cpu = cpu if cpu is not None else cpu_model()
    version = torch_version if torch_version is not None else installed_torch_version()
    slug = re.sub(r"[^a-z0-9.+-]+", "-", cpu.lower()).strip("-") or "unknown-cpu"
    return f"{slug}__t{threads}__torch-{re.sub(r'[^A-Za-z0-9.+-]+', '-', version)}"


def cache_dir() -> Path:
    return cache_root() / "latency"


def cache_path(threads: int) -> Path:
    return cache_dir() / f"{cache_key(threads)}.json"


def load_predictor(threads: int) -> LatencyPredictor | None:
    """This machine's predictor for ``threads`` threads, or None if never calibrated.

    Loaded once per process (reloaded when the file changes), so a search can ask per trial.
    """
    return load_stored(
        cache_path(threads),
        LatencyPredictor.load,
        "latency predictor",
        "run `archsearch calibrate` again",
    )


def require_predictor(threads: int) -> LatencyPredictor:
    predictor = load_predictor(threads)
    if predictor is None:
        raise InputError(
            f"no latency predictor for this machine with {threads} thread(s) "
            f"({cache_path(threads)}); run `archsearch calibrate --threads {threads}` first",
            key="latency",
        )
    return predictor
