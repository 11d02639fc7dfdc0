"""The comparison table as Lite Transformer and HAT print it: designs, their costs, the search's.

Rows: the vanilla Transformer and Lite Transformer baselines at the profile's budget (the study's
baseline trials, when the study has them), the best architecture the search found, and the
Evolved Transformer's search as published. The Evolved Transformer's parameters, Mult-Adds and
quality were measured on WMT translation, not on this study's task, so they are shown as not
applicable rather than converted. Energy and CO2 follow ``footprint.Assumptions``, printed
under the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import optuna
from rich.table import Table

from archsearch.report.footprint import (
    Assumptions,
    Footprint,
    cpu_footprint,
    evolved_transformer_footprint,
)
from archsearch.report.formatting import MISSING, format_value, objective_label, short_number
from archsearch.report.markdown import markdown_table
from archsearch.search import trial_attrs as attrs
from archsearch.search import trials as select
from archsearch.search.quality import DEFAULT_QUALITY, Quality

# Baselines the table always lists, in order, as (trial attr ``baseline``, display name).
BASELINES = (("transformer", "Transformer"), ("lite_transformer", "Lite Transformer"))
NOT_APPLICABLE = "n/a"  # the notes say why: measured on another task
NOT_RUN = "not run"
HAND_DESIGNED = "hand-designed"
QUALITY_COLUMN = 3  # where the quality objective's column sits in HEADERS
HEADERS = (
    "model",
    "params",
    "Mult-Adds",
    select.QUALITY,  # the study's quality objective (see ``Comparison.headers``)
    "search cost",
    "energy (kWh)",
    "CO2 (kg)",
    "CO2 (lbs)",
    "ET search / this",
)


@dataclass(frozen=True)
class ComparisonRow:
    """One design; ``note`` explains the cells that are empty (not run, not applicable)."""

    name: str
    trial: int | None = None
    params: int | None = None
    macs: int | None = None
    quality: float | None = None
    search: Footprint | None = None
    note: str = ""
    et_ratio: float | None = None  # Evolved Transformer's search CO2 / this row's
    quality_name: str = select.QUALITY  # the study's quality objective
    shows_val_bpb: bool = False  # a blended quality: val_bpb gets a column of its own
    val_bpb: float | None = None

    def cells(self) -> list[str]:
        columns = 4 if self.shows_val_bpb else 3
        design = [MISSING] * columns
        if self.trial is not None:
            measured = [(self.quality_name, self.quality)]
            if self.shows_val_bpb:
                measured.append((select.QUALITY, self.val_bpb))
            design = [format_value("params", self.params), format_value("macs", self.macs)]
            design += [
                format_value(name, value) if value is not None else self.note or MISSING
                for name, value in measured
            ]
        elif self.note:
            design = [self.note] * columns
        cost = [HAND_DESIGNED if self.trial is not None else MISSING] + [MISSING] * 4
        if self.search is not None:
            cost = [
                f"{short_number(self.search.hours)} {self.search.unit} h",
                short_number(self.search.kwh),
                short_number(self.search.co2_kg),
                short_number(self.search.co2_lbs),
                f"{short_number(self.et_ratio)}x" if self.et_ratio else MISSING,
            ]
        return [self.label, *design, *cost]

    @property
    def label(self) -> str:
        return self.name if self.trial is None else f"{self.name} (trial {self.trial})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trial": self.trial,
            "params": self.params,
            "macs": self.macs,
            self.quality_name: self.quality,
            **({select.QUALITY: self.val_bpb} if self.shows_val_bpb else {}),
            "search": self.search.to_dict() if self.search else None,
            "note": self.note,
            "et_ratio": self.et_ratio,
        }


@dataclass(frozen=True)
class Comparison:
    study: str
    budget: str
    convention: str
    rows: list[ComparisonRow]
    assumptions: Assumptions = field(default_factory=Assumptions)
    notes: list[str] = field(default_factory=list)
    quality: Quality = DEFAULT_QUALITY

    @property
    def headers(self) -> tuple[str, ...]:
        """``HEADERS`` with the quality column named after the study's quality objective."""
        label = objective_label(self.quality.name, self.quality.direction)
        labels = (label, select.QUALITY) if self.quality.blend else (label,)
        return (*HEADERS[:QUALITY_COLUMN], *labels, *HEADERS[QUALITY_COLUMN + 1 :])

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "quality": self.quality.to_dict(),
            "budget": self.budget,
            "convention": self.convention,
            "rows": [row.to_dict() for row in self.rows],
            "assumptions": self.assumptions.to_dict(),
            "notes": self.notes,
        }


def compare(study: optuna.Study, assumptions: Assumptions | None = None) -> Comparison:
    """The table's rows for ``study``; the search's cost is the whole study's CPU time."""
    assumptions = assumptions or Assumptions()
    quality = select.quality(study)
    et = evolved_transformer_footprint(assumptions)
    found = select.baseline_trials(study)
    rows = [_design_row(study, name, found.get(key)) for key, name in BASELINES]
    rows += [
        _design_row(study, key.replace("_", " "), trial)
        for key, trial in found.items()
        if key not in dict(BASELINES)
    ]
    spent = cpu_footprint(float(study.user_attrs.get("search_cpu_s", 0.0)), assumptions)
    best = select.best_trial(study, baselines=False)
    confirmed = study.user_attrs.get("confirmed") or {}
    best_name = "archsearch best"
    if confirmed.get("best") is not None:  # a confirm's best replaces the cheap score's
        number = int(confirmed["best"])
        best = next((t for t in study.get_trials(deepcopy=False) if t.number == number), best)
        best_name = "archsearch best (confirmed)"
    ratio = et.co2_kg / spent.co2_kg if spent.co2_kg > 0 else None
    if best is None:
        rows.append(ComparisonRow("archsearch best", note="no usable trial yet"))
    else:
        row = _trial_row(study, best_name, best)
        rows.append(dataclasses.replace(row, search=spent, et_ratio=ratio))
    rows.append(ComparisonRow("Evolved Transformer (as published)", search=et, note=NOT_APPLICABLE))
    profile = study.user_attrs.get("profile", {})
    wall_h = float(study.user_attrs.get("search_wall_s", 0.0)) / 3600.0
    done = "trained" if quality.trains else "scored"
    notes = [
        f"archsearch's search cost: {short_number(spent.hours)} CPU h, the CPU time of the "
        f"driver and of every {done} candidate, baselines included (Ray's daemons not "
        f"counted); wall clock {short_number(wall_h)} h",
        f"best found: {quality.best_word} {quality.name} among trials {done} within budget, "
        "baselines excluded",
    ]
    if confirmed.get("best") is not None:
        notes.append(_confirmed_note(confirmed))
    if not quality.trains:
        notes.append(
            f"quality: {quality.describe()}; no candidate was trained, so the column is a "
            "predicted ranking, not a measured quality (see `archsearch fidelity`)"
        )
    if quality.blend:
        notes.append(
            f"quality: {quality.describe()}; {select.QUALITY} is the brief training's loss alone"
        )
    notes += [
        "Evolved Transformer: parameters, Mult-Adds and quality were measured on WMT "
        "translation, so they are n/a on this task",
        *assumptions.describe(),
    ]
    blended = quality.blend is not None
    rows = [
        dataclasses.replace(row, quality_name=quality.name, shows_val_bpb=blended) for row in rows
    ]
    return Comparison(
        study=study.study_name,
        budget=_describe_budget(profile),
        convention=profile.get("convention", {}).get("description", ""),
        rows=rows,
        assumptions=assumptions,
        notes=notes,
        quality=quality,
    )


def comparison_table(comparison: Comparison, *, wide: bool = False) -> Table:
    """One row per model when ``wide``; otherwise one row per measure and a column per model,
    which reads in an 80-column terminal (nine measures side by side do not)."""
    table = Table(
        title=f"Comparison under {comparison.budget} (study '{comparison.study}')",
        caption="\n".join([comparison.convention, *comparison.notes]),
        caption_justify="left",
    )
    rows = [row.cells() for row in comparison.rows]
    if wide:
        for index, header in enumerate(comparison.headers):
            table.add_column(header, justify="left" if index == 0 else "right")
        for cells in rows:
            table.add_row(*cells)
        return table
    table.add_column("")
    for cells in rows:
        table.add_column(cells[0], justify="right")
    for index, header in enumerate(comparison.headers[1:], start=1):
        table.add_row(header, *(cells[index] for cells in rows))
    return table


def comparison_markdown(comparison: Comparison) -> str:
    lines = [
        f"### Comparison under {comparison.budget} (study `{comparison.study}`)",
        "",
        markdown_table(comparison.headers, [row.cells() for row in comparison.rows]),
        "",
    ]
    if comparison.convention:
        lines.append(f"- {comparison.convention}")
    lines += [f"- {note}" for note in comparison.notes]
    return "\n".join(lines) + "\n"


def _confirmed_note(confirmed: dict[str, Any]) -> str:
    """Which trial a confirm found best, and its confirmed figure (the columns keep the
    search's brief figure, comparable with the baselines' rows)."""
    best = confirmed["best"]
    model = next((m for m in confirmed.get("models", []) if m["trial"] == best), {})
    estimate = model.get("estimate") or {}
    figure = f"{estimate['mean']:.4f} val_bpb" if "mean" in estimate else "no figure"
    if estimate.get("low") is not None:
        figure += f" [{estimate['low']:.4f}, {estimate['high']:.4f}]"
    return (
        f"archsearch best (confirmed): trial {best}, lowest mean over {confirmed['seeds']} "
        f"seed(s) at {confirmed['factor']:g}x the recipe's budget: {figure}; its row shows "
        "the search's brief figures (see the confirmed section for every model)"
    )


def _design_row(study: optuna.Study, name: str, trial: Any) -> ComparisonRow:
    if trial is None:
        return ComparisonRow(name, note=NOT_RUN)
    return _trial_row(study, name, trial)


def _trial_row(study: optuna.Study, name: str, trial: optuna.trial.FrozenTrial) -> ComparisonRow:
    values = select.objective_values(study, trial)
    usable = select.is_usable(trial)
    quality = select.quality(study).name
    return ComparisonRow(
        name,
        trial=trial.number,
        params=trial.user_attrs.get(attrs.PARAMS),
        macs=trial.user_attrs.get(attrs.MACS),
        quality=values.get(quality) if usable else None,
        note="" if usable else select.status(trial),
        quality_name=quality,
        val_bpb=trial.user_attrs.get(select.QUALITY) if usable else None,
    )


def _describe_budget(profile: dict[str, Any]) -> str:
    budgets = profile.get("budgets", {})
    limits = ", ".join(f"{name} <= {format_value(name, value)}" for name, value in budgets.items())
    name = profile.get("name", "its profile")
    return f"{name} ({limits})" if limits else name
