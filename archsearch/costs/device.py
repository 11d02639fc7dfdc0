"""Latency on a device that is not this machine, predicted from measurements made there.

A device predictor is fitted on a table of (architecture, measured latency) rows
(``archsearch.costs.device_data``) and stored under a device name; a profile names the device
(``workload: {device: raspberrypi}``) and its ``latency_ms`` is then this predictor's.

Model. As for this machine's predictor (``archsearch.costs.predictor``): latency is a sum of
non-negative per-unit costs times counts of work, fitted by non-negative least squares on
relative error; unlike this machine's predictor, with a negligible ridge (``RIDGE``): with
thousands of rows the ridge only biased the fit (held-out MAE 3-5% worse on HAT's files).
Two feature sets:

- ``hat`` (HAT's files): each row is known only through ten aggregates, so the features are the
  work those aggregates determine exactly (a product with a layer count turns a per-layer mean
  into a sum over layers). The encoder (one forward over the source sentence) and the decoder
  (generating the translation token by token) are fitted apart and added; the encoder's
  features: a fixed cost, layers, layers x width x mean FFN width (the FFN's MACs), layers x
  width (the projections; HAT's q/k/v width is fixed at 512), layers x mean heads, width; the
  decoder's: a fixed cost, layers, the same FFN and projection terms, layers x mean heads and x
  mean cross-attention heads, layers x mean encoder layers read (cross-attention keys) and that
  x encoder width (their projection), and the width (the vocabulary layer, every step).
- ``arch`` (the generic format): this machine's predictor's own features
  (``predictor.latency_features``: per-family layer counts and MACs at the row's tokens and
  batch), one part, ``total``.

Artefacts. Rows are fitted robustly: fit, take each row's log(measured / predicted), and drop
those further from the median than ``FLAG_SIGMAS`` robust standard deviations (1.4826 x the
median absolute deviation) and at least ``FLAG_FLOOR`` (10%), then fit again, until the set
stops changing (fewer than ``MIN_FLAG_ROWS`` rows are fitted as they are). A row any part of
which is so far off is *flagged*: it is left out of the fit and listed (line, part, measured /
predicted), never silently.

Report. ``validation`` holds the held-out figures: rows split 80/20 with a fixed seed; the
predictor and two linear baselines (ordinary least squares with an intercept, on the table's own
columns - HAT's ten for a HAT file - and on the predictor's features) are fitted on the 80%
left after flagging, and scored on the 20% (its rows flagged by the same rule against the
80%'s fit are reported apart): MAPE and mean absolute error in ms, per part and in total. The
stored model is then fitted on every unflagged row. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archsearch.cache import cache_root
from archsearch.config import ArchConfig
from archsearch.costs.device_data import DeviceTable, GenericRow, HatRow
from archsearch.costs.predictor import Z90, Prediction, fit_relative, latency_features
from archsearch.costs.stored import load_stored
from archsearch.errors import InputError

FORMAT = 1
FLAG_SIGMAS = 5.0
FLAG_FLOOR = math.log(1.1)
TEST_FRACTION = 0.2
MIN_FLAG_ROWS = 20  # fewer rows are fitted as they are: too few to tell an artefact from noise
HAT_QKV_DIM = 512  # HAT's SuperTransformer fixes the q/k/v width; its rows do not vary it
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HAT_PARTS = ("encoder", "decoder")
RIDGE = 1e-6  # only keeps collinear columns (a constant layer count) determined


# ---- features ----------------------------------------------------------------------------------


def hat_design(v: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Per part, the work HAT's ten aggregates determine (widths in thousands, MACs-like
    products in millions, so the fit's columns have like magnitudes)."""
    return _hat_work(v)


def _hat_work(v: Mapping[str, float]) -> dict[str, dict[str, float]]:
    enc_d, enc_n = v["encoder_embed_dim"], v["encoder_layer_num"]
    dec_d, dec_n = v["decoder_embed_dim"], v["decoder_layer_num"]
    cross = v["decoder_arbitrary_ende_attn_avg"]
    return {
        "encoder": {
            "calls": 1.0,
            "layers": enc_n,
            "ffn": enc_n * enc_d * v["encoder_ffn_embed_dim_avg"] / 1e6,
            "projections": enc_n * enc_d / 1e3,
            "heads": enc_n * v["encoder_self_attention_heads_avg"],
            "width": enc_d / 1e3,
        },
        "decoder": {
            "calls": 1.0,
            "layers": dec_n,
            "ffn": dec_n * dec_d * v["decoder_ffn_embed_dim_avg"] / 1e6,
            "projections": dec_n * dec_d / 1e3,
            "heads": dec_n * v["decoder_self_attention_heads_avg"],
            "cross_heads": dec_n * v["decoder_ende_attention_heads_avg"],
            "cross_layers": dec_n * cross,
            "cross_projections": dec_n * cross * enc_d / 1e3,
            "width": dec_d / 1e3,
        },
    }


def hat_values(config: ArchConfig) -> dict[str, float]:
    """HAT's ten columns for an architecture (means over each stack's layers; the decoder's
    cross-attention heads are its self-attention heads unless set apart)."""
    refuse = _hat_misfit(config)
    if refuse:
        raise InputError(
            f"a predictor fitted on HAT's measurements knows HAT's SubTransformers only: {refuse}",
            key="latency",
        )
    enc, dec = config.encoder_layers, config.layers
    enc_d = config.encoder_width
    return {
        "encoder_embed_dim": float(enc_d),
        "encoder_layer_num": float(len(enc)),
        "encoder_ffn_embed_dim_avg": _mean(layer.hidden_dim(enc_d) for layer in enc),
        "encoder_self_attention_heads_avg": _mean(layer.heads for layer in enc),
        "decoder_embed_dim": float(config.d_model),
        "decoder_layer_num": float(len(dec)),
        "decoder_ffn_embed_dim_avg": _mean(layer.hidden_dim(config.d_model) for layer in dec),
        "decoder_self_attention_heads_avg": _mean(layer.heads for layer in dec),
        "decoder_ende_attention_heads_avg": _mean(layer.cross_head_count for layer in dec),
        "decoder_arbitrary_ende_attn_avg": _mean(layer.cross_layers for layer in dec),
    }


def _hat_misfit(config: ArchConfig) -> str:
    """Why an architecture is outside what HAT measured ('' when it is inside)."""
    if config.task != "seq2seq":
        return "an encoder-decoder (task seq2seq)"
    for prefix, stack, width in (
        ("", config.layers, config.d_model),
        ("encoder_", config.encoder_layers, config.encoder_width),
    ):
        for layer in stack:
            if layer.attention != "full" or layer.ffn != "dense":
                return f"full attention and dense FFNs, not {prefix}attention {layer.attention}"
            if layer.qkv_dim(width) != HAT_QKV_DIM:
                return f"q/k/v width {HAT_QKV_DIM} ({prefix}attn_dim), not {layer.qkv_dim(width)}"
    return ""


def _mean(values: Any) -> float:
    items = [float(v) for v in values]
    return sum(items) / len(items)


# ---- fitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One row, ready to fit: its features per part, the baseline's inputs, its latencies."""

    line: int
    design: dict[str, dict[str, float]]  # part -> feature -> value
    columns: dict[str, float]  # what the table itself gives (the linear baseline's inputs)
    measured: dict[str, float]  # part -> ms


def observations(table: DeviceTable) -> list[Observation]:
    out = []
    for row in table.rows:
        if isinstance(row, HatRow):
            out.append(Observation(row.line, hat_design(row.values), row.values, row.measured))
        else:
            assert isinstance(row, GenericRow)
            features = latency_features(row.arch, row.tokens, row.batch)
            out.append(
                Observation(row.line, {"total": features}, features, {"total": row.latency_ms})
            )
    return out


@dataclass(frozen=True)
class PartModel:
    """Non-negative weights on named features for one part (encoder, decoder or total)."""

    features: tuple[str, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]

    def predict(self, values: Mapping[str, float]) -> float:
        return sum(
            w * values.get(n, 0.0) / s
            for n, s, w in zip(self.features, self.scale, self.weights, strict=True)
        )

    def coefficients(self) -> dict[str, float]:
        return {n: w / s for n, s, w in zip(self.features, self.scale, self.weights, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "scale": list(self.scale),
            "weights": list(self.weights),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartModel:
        names, scale, weights = data["features"], data["scale"], data["weights"]
        if not len(names) == len(scale) == len(weights):
            raise ValueError("features, scale and weights differ in length")
        return cls(tuple(names), tuple(map(float, scale)), tuple(map(float, weights)))


def _matrix(rows: Sequence[Mapping[str, float]], names: Sequence[str]) -> np.ndarray:
    return np.array([[r.get(n, 0.0) for n in names] for r in rows], dtype=float).reshape(
        len(rows), len(names)
    )


def _fit_part(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> PartModel:
    scale, weights = fit_relative(x, y, ridge=RIDGE)
    return PartModel(tuple(names), tuple(map(float, scale)), tuple(map(float, weights)))


@dataclass(frozen=True)
class RobustFit:
    """A part's model fitted without its outliers, and the rule that called them outliers."""

    model: PartModel
    center: float  # median log(measured / predicted) of the rows kept
    threshold: float  # |log ratio - center| beyond this is an artefact

    def ratios(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        predicted = x @ (np.array(self.model.weights) / np.array(self.model.scale))
        return np.log(y / np.maximum(predicted, 1e-12))

    def outliers(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.abs(self.ratios(x, y) - self.center) > self.threshold


def robust_fit(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], rounds: int = 10
) -> tuple[RobustFit, np.ndarray]:
    """Fit, drop rows off by more than the artefact threshold, refit, until stable. Returns the
    fit and the mask of rows kept."""
    keep = np.ones(len(y), dtype=bool)
    if len(y) < MIN_FLAG_ROWS:  # a spread from a handful of rows would flag honest ones
        return RobustFit(_fit_part(x, y, names), 0.0, math.inf), keep
    fit = None
    for _ in range(rounds):
        model = _fit_part(x[keep], y[keep], names)
        probe = RobustFit(model, 0.0, math.inf)
        ratios = probe.ratios(x, y)
        center = float(np.median(ratios[keep]))
        sigma = 1.4826 * float(np.median(np.abs(ratios[keep] - center)))
        fit = RobustFit(model, center, max(FLAG_SIGMAS * sigma, FLAG_FLOOR))
        new = ~fit.outliers(x, y)
        if (new == keep).all() or new.sum() < max(len(names), 4):
            break
        keep = new
    assert fit is not None
    return fit, keep


def _ols(columns: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Ordinary least squares with an intercept (the linear baseline)."""
    design = np.hstack([np.ones((len(y), 1)), columns])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return lambda c: np.hstack([np.ones((len(c), 1)), c]) @ coef


def _errors(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float | None]:
    if not len(measured):
        return {"mape": None, "mae_ms": None, "p90_ape": None}
    ape = np.abs(predicted - measured) / measured
    return {
        "mape": float(ape.mean()),
        "mae_ms": float(np.abs(predicted - measured).mean()),
        "p90_ape": float(np.quantile(ape, 0.9)),
    }


@dataclass(frozen=True)
class Fitted:
    """Per-part robust fits on some rows, and which rows (any part) they flag."""

    fits: dict[str, RobustFit]
    flagged: np.ndarray  # bool per row given


def _fit_parts(obs: Sequence[Observation], parts: Sequence[str]) -> Fitted:
    flagged = np.zeros(len(obs), dtype=bool)
    first: dict[str, RobustFit] = {}
    names = {p: sorted({n for o in obs for n in o.design[p]}) for p in parts}
    for part in parts:
        x = _matrix([o.design[part] for o in obs], names[part])
        y = np.array([o.measured[part] for o in obs])
        first[part], keep = robust_fit(x, y, names[part])
        flagged |= ~keep
    fits = {}
    for part in parts:  # a row flagged in one part is left out of every part's fit
        x = _matrix([o.design[part] for o in obs], names[part])
        y = np.array([o.measured[part] for o in obs])
        model = _fit_part(x[~flagged], y[~flagged], names[part])
        fits[part] = RobustFit(model, first[part].center, first[part].threshold)
    return Fitted(fits, flagged)


def _predict_rows(fits: Mapping[str, RobustFit], obs: Sequence[Observation]) -> dict[str, Any]:
    out = {
        part: np.array([fit.model.predict(o.design[part]) for o in obs])
        for part, fit in fits.items()
    }
    if "total" not in fits:
        out["total"] = _sum(out[p] for p in fits)
    return out


def _sum(arrays: Any) -> np.ndarray:
    return np.sum(list(arrays), axis=0)


def held_out_report(
    obs: Sequence[Observation], parts: Sequence[str], *, seed: int = 0
) -> dict[str, Any]:
    """The 80/20 comparison of the module docstring."""
    order = np.random.default_rng(seed).permutation(len(obs))
    n_test = max(1, round(TEST_FRACTION * len(obs)))
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    train = [obs[i] for i in train_idx]
    test = [obs[i] for i in test_idx]
    fitted = _fit_parts(train, parts)
    clean_train = [o for o, bad in zip(train, fitted.flagged, strict=True) if not bad]
    test_flagged = np.zeros(len(test), dtype=bool)
    for part, fit in fitted.fits.items():
        x = _matrix([o.design[part] for o in test], fit.model.features)
        y = np.array([o.measured[part] for o in test])
        test_flagged |= fit.outliers(x, y)
    predicted = _predict_rows(fitted.fits, test)
    column_names = sorted({n for o in obs for n in o.columns})
    baselines: dict[str, dict[str, np.ndarray]] = {"linear": {}, "linear_features": {}}
    for part in parts:
        y = np.array([o.measured[part] for o in clean_train])
        columns = _matrix([o.columns for o in clean_train], column_names)
        baselines["linear"][part] = _ols(columns, y)(
            _matrix([o.columns for o in test], column_names)
        )
        names = fitted.fits[part].model.features
        design = _matrix([o.design[part] for o in clean_train], names)
        baselines["linear_features"][part] = _ols(design, y)(
            _matrix([o.design[part] for o in test], names)
        )
    for preds in baselines.values():
        if "total" not in preds:
            preds["total"] = _sum(preds[p] for p in parts)
    measured = {p: np.array([o.measured[p] for o in test]) for p in parts}
    if "total" not in measured:
        measured["total"] = _sum(measured[p] for p in parts)
    clean = ~test_flagged
    report: dict[str, Any] = {
        "method": f"{len(train)} rows fitted, {len(test)} held out (seed {seed}); flagged rows "
        "left out of both",
        "seed": seed,
        "train_rows": len(train),
        "test_rows": len(test),
        "train_flagged": int(fitted.flagged.sum()),
        "test_flagged": int(test_flagged.sum()),
        "parts": {},
    }
    for part in measured:
        y = measured[part]
        entry = {
            "predictor": _errors(predicted[part][clean], y[clean]),
            "linear": _errors(baselines["linear"][part][clean], y[clean]),
            "linear_features": _errors(baselines["linear_features"][part][clean], y[clean]),
            "predictor_all_rows": _errors(np.maximum(predicted[part], 1e-9), y),
            "linear_all_rows": _errors(baselines["linear"][part], y),
        }
        report["parts"][part] = entry
    ratio = np.log(measured["total"][clean] / np.maximum(predicted["total"][clean], 1e-12))
    report["sigma_log"] = float(ratio.std()) if len(ratio) > 1 else 0.0
    return report


# ---- the predictor -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DevicePredictor:
    """Fitted parts of one device's latency, what was timed there, and how well it predicts."""

    device: str
    kind: str  # hat | arch
    parts: dict[str, PartModel]
    sigma_log: float
    workload: dict[str, Any]  # tokens, batch, what one measurement is
    source: dict[str, Any] = field(default_factory=dict)
    flagged: tuple[dict[str, Any], ...] = ()
    validation: dict[str, Any] = field(default_factory=dict)

    def predict_parts(self, config: ArchConfig, tokens: int, batch: int = 1) -> dict[str, float]:
        """Milliseconds per part (and ``total``) for ``config`` at ``tokens`` x ``batch``."""
        if self.kind == "hat":
            measured = (self.workload["tokens"], self.workload["batch"])
            if (tokens, batch) != measured:
                raise InputError(
                    f"device {self.device!r} was measured at {measured[0]} tokens, batch "
                    f"{measured[1]} (HAT's protocol); the profile asks {tokens} tokens, batch "
                    f"{batch}: set its workload to match",
                    key="workload",
                )
            design = hat_design(hat_values(config))
            out = {part: model.predict(design[part]) for part, model in self.parts.items()}
            out["total"] = sum(out.values())
            return out
        values = latency_features(config, tokens, batch)
        known = set(self.parts["total"].features)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                f"device {self.device!r}'s predictor was fitted without {unknown[0]}; collect "
                "rows with it (scripts/collect_latency.py on a space that has it) and fit again",
                key="latency",
            )
        return {"total": self.parts["total"].predict(values)}

    def predict(self, config: ArchConfig, tokens: int, batch: int = 1) -> Prediction:
        ms = self.predict_parts(config, tokens, batch)["total"]
        spread = math.exp(Z90 * self.sigma_log)
        return Prediction(ms, ms / spread, ms * spread, self.sigma_log)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "device": self.device,
            "kind": self.kind,
            "workload": self.workload,
            "parts": {name: part.to_dict() for name, part in self.parts.items()},
            "sigma_log": self.sigma_log,
            "source": self.source,
            "flagged": list(self.flagged),
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DevicePredictor:
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported device predictor format {data.get('format')!r}")
        if data.get("kind") not in ("hat", "arch"):
            raise ValueError(f"unknown kind {data.get('kind')!r}")
        return cls(
            device=str(data["device"]),
            kind=data["kind"],
            parts={k: PartModel.from_dict(v) for k, v in data["parts"].items()},
            sigma_log=float(data["sigma_log"]),
            workload=dict(data["workload"]),
            source=dict(data.get("source", {})),
            flagged=tuple(data.get("flagged", ())),
            validation=dict(data.get("validation", {})),
        )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1))
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> DevicePredictor:
        return cls.from_dict(json.loads(path.read_text()))


def fit_device(
    table: DeviceTable, device: str, *, tokens: int | None = None, seed: int = 0
) -> DevicePredictor:
    """Fit ``device``'s predictor on ``table`` (with the held-out report and the flags).
    ``tokens``: what a HAT file's rows were timed at (HAT: 23 for IWSLT, 30 for WMT)."""
    check_device_name(device)
    obs = observations(table)
    kind = "hat" if table.format == "hat" else "arch"
    parts = HAT_PARTS if kind == "hat" else ("total",)
    validation = held_out_report(obs, parts, seed=seed)
    fitted = _fit_parts(obs, parts)
    flagged = []
    for index in np.flatnonzero(fitted.flagged):
        o = obs[index]
        ratios = {
            part: o.measured[part] / max(fit.model.predict(o.design[part]), 1e-12)
            for part, fit in fitted.fits.items()
        }
        flagged.append(
            {
                "line": o.line,
                "measured_ms": o.measured,
                "ratio": {p: round(r, 4) for p, r in ratios.items()},
                "parts": [
                    p
                    for p, fit in fitted.fits.items()
                    if abs(math.log(ratios[p]) - fit.center) > fit.threshold
                ],
            }
        )
    if kind == "hat":
        tokens = tokens or hat_tokens(table.path)
        workload = {
            "tokens": tokens,
            "batch": 1,
            "timed": f"HAT's protocol: encoder over {tokens} source tokens plus the decoder "
            f"generating {tokens} tokens with beam search (fairseq, HAT's vocabulary)",
        }
    else:
        sizes = {(r.tokens, r.batch) for r in table.rows if isinstance(r, GenericRow)}
        workload = {
            "tokens": sorted({t for t, _ in sizes}),
            "batch": sorted({b for _, b in sizes}),
            "timed": "one forward (seq2seq: source and target of `tokens` each, teacher-forced)",
        }
    data = Path(table.path).read_bytes()
    source = {
        "path": str(Path(table.path).resolve()),
        "sha256": hashlib.sha256(data).hexdigest(),
        "format": table.format,
        "rows": len(obs),
        "flagged_rows": int(fitted.flagged.sum()),
        "attribution": table.attribution,
    }
    return DevicePredictor(
        device=device,
        kind=kind,
        parts={part: fit.model for part, fit in fitted.fits.items()},
        sigma_log=validation["sigma_log"],
        workload=workload,
        source=source,
        flagged=tuple(flagged),
        validation=validation,
    )


def hat_tokens(path: str) -> int:
    """HAT times IWSLT models at 23 tokens (its average sentence) and WMT ones at 30."""
    return 23 if Path(path).name.lower().startswith("iwslt") else 30


def flagged_runs(flagged: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flagged rows grouped into runs of consecutive lines (a device that changed state while
    measuring flags a stretch of rows), each with the median measured / predicted per part."""
    runs: list[list[Mapping[str, Any]]] = []
    for row in sorted(flagged, key=lambda r: r["line"]):
        if runs and row["line"] - runs[-1][-1]["line"] <= 2:
            runs[-1].append(row)
        else:
            runs.append([row])
    out = []
    for run in runs:
        parts = sorted({p for r in run for p in r["parts"]})
        out.append(
            {
                "first_line": run[0]["line"],
                "last_line": run[-1]["line"],
                "rows": len(run),
                "parts": parts,
                "median_ratio": {
                    p: float(np.median([r["ratio"][p] for r in run])) for p in run[0]["ratio"]
                },
            }
        )
    return out


# ---- storage -----------------------------------------------------------------------------------


def check_device_name(name: str) -> str:
    if not isinstance(name, str) or not DEVICE_NAME.match(name):
        raise InputError(
            f"must be a name of letters, digits, '.', '_' or '-' (at most 64), got {name!r}",
            key="device",
        )
    return name


def device_dir() -> Path:
    return cache_root() / "latency" / "devices"


def device_path(name: str) -> Path:
    return device_dir() / f"{check_device_name(name)}.json"


def load_device_predictor(name: str) -> DevicePredictor | None:
    """The stored predictor of device ``name`` (None if never fitted); loaded once per process
    and reloaded when its file changes, so a search can ask per trial."""
    return load_stored(
        device_path(name),
        DevicePredictor.load,
        "device latency predictor",
        f"fit it again with `archsearch calibrate --from-csv CSV --device {name}`",
    )


def require_device_predictor(name: str) -> DevicePredictor:
    predictor = load_device_predictor(name)
    if predictor is None:
        raise InputError(
            f"no latency predictor for device {name!r} ({device_path(name)}); fit one first: "
            f"`archsearch calibrate --from-csv MEASUREMENTS.csv --device {name}`",
            key="workload.device",
        )
    return predictor
