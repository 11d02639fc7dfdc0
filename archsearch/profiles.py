"""Hardware profiles: YAML -> hard budgets, objectives, a workload and a counting convention.

A profile is what a user means by "fits": ``mobile_100M`` is Lite Transformer's mobile setting,
at most 100M multiply-adds for a 30-token sentence with the embedding table and the output layer
left out. The convention travels with every result so figures are never compared across
conventions by accident.

Besides MACs and parameters (read from ``Costs``), a profile can bound or trade peak memory
(inference, generation, training; analytic, ``archsearch.costs.peak_bytes``) and latency: forward
latency on this machine (predicted by the predictor ``archsearch calibrate`` stores), or, with
``workload: {device: NAME}``, on a device measured elsewhere (``archsearch.costs.device``).
Those metrics need the architecture itself and the profile's ``workload`` (batch size, tokens
per sequence, CPU threads): every method that evaluates metrics takes ``config=`` next to the
costs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archsearch.builtins import resolve
from archsearch.checks import MAX_FLOAT, check_count
from archsearch.config import ArchConfig
from archsearch.costs.convention import CountingConvention
from archsearch.errors import InputError, yaml_key
from archsearch.yamlfile import read_yaml

if TYPE_CHECKING:  # importing the counter imports torch; reading a profile does not need it
    from archsearch.costs.analytic import Costs


@dataclass(frozen=True)
class Workload:
    """What memory and latency are quoted for: ``batch_size`` sequences of ``tokens`` (default:
    the convention's tokens), timed with ``threads`` CPU threads of this machine, or on
    ``device``: a device whose predictor was fitted on measurements made there
    (``archsearch calibrate --from-csv CSV --device NAME``; ``archsearch.costs.device``)."""

    batch_size: int = 1
    tokens: int | None = None
    threads: int = 1
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "tokens", "threads"):
            value = getattr(self, name)
            if value is None and name == "tokens":
                continue
            check_count(name, value)
        if self.device is not None:
            from archsearch.costs.device import check_device_name

            check_device_name(self.device)

    def tokens_for(self, convention: CountingConvention) -> int:
        return self.tokens if self.tokens is not None else convention.tokens

    def to_dict(self, convention: CountingConvention) -> dict[str, Any]:
        out: dict[str, Any] = {
            "batch_size": self.batch_size,
            "tokens": self.tokens_for(convention),
            "threads": self.threads,
        }
        if self.device is not None:
            out["device"] = self.device
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Workload:
        if not isinstance(data, dict):
            raise InputError("must be a mapping", key="workload")
        known = ("batch_size", "tokens", "threads", "device")
        unknown = sorted(set(data) - set(known), key=str)
        if unknown:
            raise InputError(
                f"unknown key (known: {', '.join(known)})", key=f"workload.{yaml_key(unknown[0])}"
            )
        try:
            return cls(**data)
        except InputError as exc:
            raise exc.under("workload") from None


@dataclass(frozen=True)
class MetricInputs:
    """What a metric may read: the analytic costs, the architecture and the profile."""

    costs: Costs
    config: ArchConfig | None
    profile: Profile

    @property
    def arch(self) -> ArchConfig:
        """The architecture, its ``max_seq_len`` raised to the workload's tokens if shorter
        (what running that workload takes; it only changes Linformer's projections)."""
        if self.config is None:
            raise ValueError("this metric needs the architecture: pass config=")
        if self.tokens > self.config.max_seq_len:
            return self.config.replace(max_seq_len=self.tokens)
        return self.config

    @property
    def tokens(self) -> int:
        return self.profile.workload.tokens_for(self.profile.convention)

    @property
    def batch(self) -> int:
        return self.profile.workload.batch_size


@dataclass(frozen=True)
class Metric:
    """A cost a profile can bound or trade: how to compute it, its unit, what it needs."""

    compute: Callable[[MetricInputs], float]
    unit: str  # MACs | parameters | bytes | ms
    description: str
    needs: str = "costs"  # costs | config | predictor


@lru_cache(maxsize=512)
def _memory(kind: str, config: ArchConfig, tokens: int, batch: int) -> int:
    from archsearch.costs import peak_bytes

    estimate = {
        "inference": peak_bytes.inference_memory,
        "generation": peak_bytes.generation_memory,
        "training": peak_bytes.training_memory,
    }[kind]
    return estimate(config, tokens, batch).peak


def _int8_bytes(inputs: MetricInputs) -> float:
    from archsearch.costs.int8 import int8_weight_bytes

    if inputs.config is None:
        raise ValueError("this metric needs the architecture: pass config=")
    return int8_weight_bytes(inputs.config)


def latency_predictor(workload: Workload) -> Any:
    """The predictor a profile's latency comes from: its device's, or this machine's for its
    thread count (an ``InputError`` saying how to make it when there is none)."""
    if workload.device is not None:
        from archsearch.costs.device import require_device_predictor

        return require_device_predictor(workload.device)
    from archsearch.costs.predictor import require_predictor

    return require_predictor(workload.threads)


def _latency(inputs: MetricInputs, bound: str) -> float:
    prediction = latency_predictor(inputs.profile.workload).predict(
        inputs.arch, inputs.tokens, inputs.batch
    )
    return {"ms": prediction.ms, "high": prediction.high_ms}[bound]


# Cost metrics a profile can bound or trade against quality.
COST_METRICS: dict[str, Metric] = {
    "macs": Metric(lambda m: m.costs.macs, "MACs", "MACs under the profile's convention"),
    "params": Metric(
        lambda m: m.costs.counted_params, "parameters", "parameters under the convention"
    ),
    "total_params": Metric(lambda m: m.costs.params, "parameters", "all parameters"),
    "weight_bytes": Metric(lambda m: m.costs.weight_bytes, "bytes", "bytes of float32 weights"),
    "weight_bytes_int8": Metric(
        _int8_bytes,
        "bytes",
        "bytes a dynamic-int8 file stores (int8 linears with their scales, float rest, "
        "buffers; archsearch compress --int8)",
        needs="config",
    ),
    "inference_memory": Metric(
        lambda m: _memory("inference", m.arch, m.tokens, m.batch),
        "bytes",
        "peak bytes of an inference forward over the workload (analytic)",
        needs="config",
    ),
    "generation_memory": Metric(
        lambda m: _memory("generation", m.arch, m.tokens, m.batch),
        "bytes",
        "peak bytes of cached decoding with the workload's tokens of context (analytic)",
        needs="config",
    ),
    "train_memory": Metric(
        lambda m: _memory("training", m.arch, m.tokens, m.batch),
        "bytes",
        "peak bytes of an AdamW training step over the workload (analytic)",
        needs="config",
    ),
    "latency_ms": Metric(
        lambda m: _latency(m, "ms"),
        "ms",
        "latency of the workload on this machine (a forward) or on the workload's device (what "
        "its measurements timed), predicted",
        needs="predictor",
    ),
    "latency_ms_high": Metric(
        lambda m: _latency(m, "high"),
        "ms",
        "upper end of the predicted latency's 90% interval",
        needs="predictor",
    ),
}
TOP_KEYS = {"name", "description", "convention", "workload", "budgets", "objectives", "reference"}
UNITS = {
    "bytes": {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2**10, "mib": 2**20, "gib": 2**30},
    "ms": {"us": 1e-3, "ms": 1.0, "s": 1e3},
    "MACs": {"k": 1e3, "m": 1e6, "g": 1e9},
    "parameters": {"k": 1e3, "m": 1e6, "g": 1e9},
}


@dataclass(frozen=True)
class Profile:
    """Budgets (hard limits, inclusive), cost objectives and the workload of one target."""

    name: str
    convention: CountingConvention
    budgets: dict[str, float]
    objectives: tuple[str, ...] = ("macs",)
    description: str = ""
    reference: str = ""
    source: str = ""
    workload: Workload = field(default_factory=Workload)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric the profile uses (budgets first), once each."""
        return tuple(dict.fromkeys([*self.budgets, *self.objectives]))

    @property
    def needs_config(self) -> bool:
        """Whether metrics need ``config=`` (memory, latency), not only ``Costs``."""
        return any(COST_METRICS[m].needs != "costs" for m in self.metrics)

    @property
    def needs_predictor(self) -> bool:
        return any(COST_METRICS[m].needs == "predictor" for m in self.metrics)

    def prepare(self) -> None:
        """Fail early (InputError) when a metric cannot be computed on this machine: call once
        before a search. Loads the latency predictor, which later calls reuse."""
        if self.needs_predictor:
            latency_predictor(self.workload)

    @property
    def latency_here(self) -> bool:
        """Whether the latency it budgets is this machine's, so it can be timed here."""
        return self.needs_predictor and self.workload.device is None

    def metric(self, name: str, costs: Costs, config: ArchConfig | None = None) -> float:
        return float(COST_METRICS[name].compute(MetricInputs(costs, config, self)))

    def measures(self, costs: Costs, config: ArchConfig | None = None) -> dict[str, float]:
        """Every metric the profile uses, by name."""
        return {name: self.metric(name, costs, config) for name in self.metrics}

    def violations(self, costs: Costs, config: ArchConfig | None = None) -> dict[str, float]:
        """Budget name -> how far over (positive) or under (<= 0) the budget, as a ratio - 1."""
        return {
            name: self.metric(name, costs, config) / limit - 1.0
            for name, limit in self.budgets.items()
        }

    def over_budget(self, costs: Costs, config: ArchConfig | None = None) -> list[str]:
        """Human-readable reasons, one per exceeded budget (empty when feasible)."""
        reasons = []
        for name, limit in self.budgets.items():
            value = self.metric(name, costs, config)
            if value > limit:
                unit = COST_METRICS[name].unit
                reasons.append(
                    f"{name} {format_value(value, unit)} > budget {format_value(limit, unit)}"
                )
        return reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "convention": self.convention.to_dict(),
            "workload": self.workload.to_dict(self.convention),
            "budgets": dict(self.budgets),
            "units": {name: COST_METRICS[name].unit for name in self.metrics},
            "objectives": list(self.objectives),
            "reference": self.reference,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "") -> Profile:
        try:
            return _parse(data, source)
        except InputError as exc:
            raise exc.located(source) from None


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name (``mobile_100M``) or a user's YAML file."""
    path = resolve("hardware_profiles", name_or_path, option="--profile")
    return Profile.from_dict(read_yaml(path), source=str(path))


def _parse(data: Any, source: str) -> Profile:
    if not isinstance(data, dict):
        raise InputError("a profile must be a mapping")
    unknown = sorted(set(data) - TOP_KEYS, key=str)  # YAML keys may be numbers
    if unknown:
        raise InputError(
            f"unknown key (known: {', '.join(sorted(TOP_KEYS))})", key=yaml_key(unknown[0])
        )
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise InputError("must be a string", key="name")
    try:
        convention = CountingConvention.from_dict(data.get("convention", {}))
    except InputError as exc:
        raise exc.under("convention") from None
    workload = Workload.from_dict(data.get("workload", {}))
    budgets_raw = data.get("budgets", {})
    if not isinstance(budgets_raw, dict) or not budgets_raw:
        raise InputError("must be a non-empty mapping of metric -> limit", key="budgets")
    budgets: dict[str, float] = {}
    for metric, limit in budgets_raw.items():
        _check_metric(metric, f"budgets.{metric}")
        budgets[metric] = parse_amount(limit, COST_METRICS[metric].unit, f"budgets.{metric}")
    objectives = data.get("objectives", ["macs"])
    if not isinstance(objectives, list) or not objectives:
        raise InputError("must be a non-empty list of cost metrics", key="objectives")
    for index, metric in enumerate(objectives):
        _check_metric(metric, f"objectives[{index}]")
    if len(set(objectives)) != len(objectives):
        raise InputError("lists a metric twice", key="objectives")
    for key in ("description", "reference"):
        if not isinstance(data.get(key, ""), str):
            raise InputError("must be a string", key=key)
    return Profile(
        name=name,
        convention=convention,
        budgets=budgets,
        objectives=tuple(objectives),
        description=data.get("description", ""),
        reference=data.get("reference", ""),
        source=source,
        workload=workload,
        raw=data,
    )


def _check_metric(metric: Any, key: str) -> None:
    if not isinstance(metric, str) or metric not in COST_METRICS:
        known = ", ".join(COST_METRICS)
        raise InputError(f"unknown cost metric {metric!r} (known: {known})", key=key)


_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_amount(value: Any, unit: str, key: str) -> float:
    """A positive budget in the metric's unit: a number, or a string with a unit suffix that
    fits the metric (``16 GB``, ``512MiB``, ``20 ms``, ``100M`` MACs)."""
    if isinstance(value, bool):
        raise InputError(f"must be a positive number, got {value!r}", key=key)
    if isinstance(value, (int, float)):
        if not abs(value) <= MAX_FLOAT:  # an int past a float's range cannot be a budget
            raise InputError(f"must be a finite positive number, got {value!r}", key=key)
        amount = float(value)
    elif isinstance(value, str) and (match := _AMOUNT.match(value)):
        number, suffix = match.groups()
        factors = UNITS[unit]
        if suffix and suffix.lower() not in factors:
            allowed = ", ".join(sorted({k.upper() if unit != "ms" else k for k in factors}))
            raise InputError(
                f"unit {suffix!r} does not fit this {unit} metric (use {allowed}, or a number "
                f"in {unit})",
                key=key,
            )
        amount = float(number) * (factors[suffix.lower()] if suffix else 1.0)
    else:
        raise InputError(
            f"must be a positive number (in {unit}) or a number with a unit, got {value!r}",
            key=key,
        )
    if not amount > 0 or amount == float("inf"):
        raise InputError(f"must be a positive number, got {value!r}", key=key)
    return amount


def format_value(value: float, unit: str) -> str:
    """A figure with an SI prefix (bytes in MB/GB, latency in ms)."""
    if unit == "bytes":
        for factor, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= factor:
                return f"{value / factor:.3g} {suffix}"
        return f"{value:.3g} B"
    if unit == "ms":
        return f"{value:.3g} ms"
    return _si(value)


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"
