"""Hardware profiles: YAML -> hard budgets, objectives and the counting convention.

A profile is what a user means by "fits": ``mobile_100M`` is Lite Transformer's mobile setting,
at most 100M multiply-adds for a 30-token sentence with the embedding table and the output layer
left out. The convention travels with every result so figures are never compared across
conventions by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archsearch.builtins import resolve
from archsearch.costs.analytic import Costs
from archsearch.costs.convention import CountingConvention
from archsearch.errors import InputError

# Cost metrics a profile can bound or trade against quality: name -> (reads it from Costs, unit).
COST_METRICS: dict[str, tuple[Callable[[Costs], float], str]] = {
    "macs": (lambda c: c.macs, "MACs under the profile's convention"),
    "params": (lambda c: c.counted_params, "parameters under the profile's convention"),
    "total_params": (lambda c: c.params, "all parameters"),
    "weight_bytes": (lambda c: c.weight_bytes, "bytes of float32 weights"),
}
TOP_KEYS = {"name", "description", "convention", "budgets", "objectives", "reference"}


@dataclass(frozen=True)
class Profile:
    """Budgets (hard limits, inclusive) and cost objectives of one hardware target."""

    name: str
    convention: CountingConvention
    budgets: dict[str, float]
    objectives: tuple[str, ...] = ("macs",)
    description: str = ""
    reference: str = ""
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def metric(self, name: str, costs: Costs) -> float:
        return float(COST_METRICS[name][0](costs))

    def violations(self, costs: Costs) -> dict[str, float]:
        """Budget name -> how far over (positive) or under (<= 0) the budget, as a ratio - 1."""
        return {
            name: self.metric(name, costs) / limit - 1.0 for name, limit in self.budgets.items()
        }

    def over_budget(self, costs: Costs) -> list[str]:
        """Human-readable reasons, one per exceeded budget (empty when feasible)."""
        return [
            f"{name} {_si(self.metric(name, costs))} > budget {_si(self.budgets[name])}"
            for name, excess in self.violations(costs).items()
            if excess > 0
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "convention": self.convention.to_dict(),
            "budgets": dict(self.budgets),
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
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"not valid YAML{where}", source=str(path)) from None
    return Profile.from_dict(data, source=str(path))


def _parse(data: Any, source: str) -> Profile:
    if not isinstance(data, dict):
        raise InputError("a profile must be a mapping")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key (known: {', '.join(sorted(TOP_KEYS))})", key=unknown[0])
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise InputError("must be a string", key="name")
    try:
        convention = CountingConvention.from_dict(data.get("convention", {}))
    except InputError as exc:
        raise exc.under("convention") from None
    budgets_raw = data.get("budgets", {})
    if not isinstance(budgets_raw, dict) or not budgets_raw:
        raise InputError("must be a non-empty mapping of metric -> limit", key="budgets")
    budgets: dict[str, float] = {}
    for metric, limit in budgets_raw.items():
        _check_metric(metric, f"budgets.{metric}")
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
            raise InputError(f"must be a positive number, got {limit!r}", key=f"budgets.{metric}")
        budgets[metric] = float(limit)
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
        raw=data,
    )


def _check_metric(metric: Any, key: str) -> None:
    if metric not in COST_METRICS:
        known = ", ".join(COST_METRICS)
        raise InputError(f"unknown cost metric {metric!r} (known: {known})", key=key)


def _si(value: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"
