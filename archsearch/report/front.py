"""The Pareto front of a study, feasible trials only, as rows and as a Rich table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from rich.table import Table

from archsearch.search.constraints import is_feasible


@dataclass(frozen=True)
class FrontRow:
    number: int
    values: dict[str, float]
    arch: dict[str, Any]
    params: int | None
    wall_s: float | None


def pareto_front(study: optuna.Study) -> list[FrontRow]:
    """Non-dominated COMPLETE trials that meet every budget, best quality first.

    ``study.best_trials`` already leaves out infeasible trials; the filter below keeps that true
    even for trials whose constraints were written by an older archsearch.
    """
    names = study.user_attrs.get("objectives") or [f"objective_{i}" for i in range(2)]
    rows = [
        FrontRow(
            number=trial.number,
            values=dict(zip(names, trial.values, strict=True)),
            arch=trial.user_attrs.get("arch", {}),
            params=trial.user_attrs.get("params"),
            wall_s=trial.user_attrs.get("wall_s"),
        )
        for trial in study.best_trials
        if is_feasible(trial) and trial.user_attrs.get("status") == "complete"
    ]
    return sorted(rows, key=lambda row: list(row.values.values()))


def front_table(study: optuna.Study, rows: list[FrontRow]) -> Table:
    names = study.user_attrs.get("objectives", [])
    table = Table(title=f"Pareto front of study '{study.study_name}' (feasible trials)")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("params", justify="right")
    table.add_column("architecture")
    for row in rows:
        cells = [str(row.number)]
        cells += [_format(name, row.values[name]) for name in names]
        cells.append(_millions(row.params) if row.params is not None else "-")
        cells.append(summarize_arch(row.arch))
        table.add_row(*cells)
    return table


def summarize_arch(arch: dict[str, Any]) -> str:
    """A one-line description: layers, width, then the per-layer choices that vary."""
    parts = [f"L={arch.get('n_layers')}", f"d={arch.get('d_model')}"]
    for key in ("heads", "attention", "ffn", "ffn_ratio", "ffn_dim", "embed_dim", "memory"):
        if key in arch and arch[key] is not None:
            parts.append(f"{key}={arch[key]}")
    return " ".join(str(p) for p in parts)


def _format(name: str, value: float) -> str:
    if name in ("macs", "params", "total_params"):
        return _millions(value)
    return f"{value:.4f}"


def _millions(value: float) -> str:
    return f"{value / 1e6:.2f}M"


def print_front(console: Any, storage: str, study_name: str) -> None:
    """Load a study and print its feasible Pareto front."""
    from archsearch.search.study import load_study

    study = load_study(storage, study_name)
    console.print(front_table(study, pareto_front(study)))
