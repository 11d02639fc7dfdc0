"""The Pareto front of a study, feasible trials only, as rows and as a Rich table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from rich.table import Table

from archsearch.report.architecture import compact_arch, wide_arch
from archsearch.report.formatting import format_value, objective_label
from archsearch.search import trial_attrs as attrs
from archsearch.search.trials import (
    baseline_name,
    front_trials,
    objective_directions,
    objective_names,
)


@dataclass(frozen=True)
class FrontRow:
    number: int
    values: dict[str, float]
    arch: dict[str, Any]
    params: int | None
    wall_s: float | None
    baseline: str | None = None
    supernet_bpb: float | None = None  # a finalist's score in the supernet study
    mutation_of: int | None = None  # a refine mutation: the trial it mutates


def pareto_front(study: optuna.Study) -> list[FrontRow]:
    """The front as rows (see ``front_trials``)."""
    names = objective_names(study)
    return [
        FrontRow(
            number=trial.number,
            values=dict(zip(names, trial.values, strict=True)),
            arch=trial.user_attrs.get(attrs.ARCH, {}),
            params=trial.user_attrs.get(attrs.PARAMS),
            wall_s=trial.user_attrs.get(attrs.WALL_S),
            baseline=baseline_name(trial),
            supernet_bpb=trial.user_attrs.get(attrs.SUPERNET_BPB),
            mutation_of=trial.user_attrs.get(attrs.MUTATION_OF),
        )
        for trial in front_trials(study)
    ]


def front_table(study: optuna.Study, rows: list[FrontRow], *, wide: bool = False) -> Table:
    names = objective_names(study)
    directions = objective_directions(study)
    table = Table(title=f"Pareto front of study '{study.study_name}' (feasible trials)")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(objective_label(name, directions[name]), justify="right")
    finalists = any(row.supernet_bpb is not None for row in rows)
    if finalists:  # trained from scratch after a supernet search: its score beside
        table.add_column("supernet_bpb", justify="right")
    table.add_column("params", justify="right")
    table.add_column("architecture")
    for row in rows:
        cells = [_trial_label(row)]
        cells += [format_value(name, row.values[name]) for name in names]
        if finalists:
            cells.append("" if row.supernet_bpb is None else f"{row.supernet_bpb:.4f}")
        cells.append(format_value("params", row.params))
        cells.append(wide_arch(row.arch) if wide else compact_arch(row.arch))
        table.add_row(*cells)
    return table


def _trial_label(row: FrontRow) -> str:
    if row.baseline:
        return f"{row.number} ({row.baseline})"
    if row.mutation_of is not None:
        return f"{row.number} (mutates {row.mutation_of})"
    return str(row.number)


def print_front(
    console: Any, storage: str, study_name: str, limit: int | None = None, *, wide: bool = False
) -> None:
    """Load a study and print its feasible Pareto front (its best ``limit`` rows if given)."""
    from archsearch.report.reading import load_existing_study

    study = load_existing_study(storage, study_name)
    rows = pareto_front(study)
    console.print(front_table(study, rows[:limit] if limit is not None else rows, wide=wide))
    if limit is not None and len(rows) > limit:
        console.print(
            f"... and {len(rows) - limit} more on the front: archsearch show --study {study_name}"
        )
