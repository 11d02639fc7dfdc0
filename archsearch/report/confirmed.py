"""The confirmed section of a report: each model's mean over seeds with its interval, the paired
verdicts against the baselines, and how well the cheap score ranked the confirmed models.

Reads the study user attribute ``confirmed`` (written by ``archsearch confirm``) as plain data,
so a report needs neither the companion study nor the statistics code.
"""

from __future__ import annotations

from typing import Any

import optuna
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from archsearch.report.formatting import MISSING, format_value
from archsearch.report.markdown import markdown_table

STUDY_ATTR = "confirmed"
HEADERS = ("model", "Mult-Adds", "cheap score", "confirmed val_bpb", "95% interval", "seeds")


def confirmed_of(study: optuna.Study) -> dict[str, Any] | None:
    """The study's confirm summary, if a confirm has run."""
    found = study.user_attrs.get(STUDY_ATTR)
    return found if isinstance(found, dict) else None


def _interval(estimate: dict[str, Any] | None) -> str:
    if not estimate:
        return MISSING
    if estimate.get("low") is None:
        return "one seed: no interval"
    return f"[{estimate['low']:.4f}, {estimate['high']:.4f}]"


def model_rows(confirmed: dict[str, Any]) -> list[list[str]]:
    lost = set(confirmed.get("lost", []))
    rows = []
    for model in confirmed.get("models", []):
        estimate = model.get("estimate")
        name = model["name"]
        if model.get("baseline"):
            name += f" ({model['trial']})"  # candidates are named by their trial already
        if model["trial"] in lost:
            name += " (lost)"
        if model["trial"] == confirmed.get("best"):
            name += " (best)"
        rows.append(
            [
                name,
                format_value("macs", model.get("macs")),
                format_value("score", model.get("score")),
                format_value("val_bpb", estimate["mean"] if estimate else None),
                _interval(estimate),
                str(len(model.get("runs", {}))),
            ]
        )
    return rows


def describe_lines(confirmed: dict[str, Any]) -> list[str]:
    """What was run, the verdict sentences with what each could detect, the rank check."""
    lines = [
        f"retrained from scratch at {confirmed['factor']:g}x the recipe's budget "
        f"({confirmed['token_budget']:,} tokens of {confirmed['recipe']}), "
        f"{confirmed['seeds']} seed(s) each (seed = initial weights and data order); "
        f"runs in study '{confirmed['companion_study']}'",
    ]
    if confirmed.get("lost"):
        lines.append("(lost): worse than a baseline, the paired interval excluding zero")
    if confirmed.get("best") is not None:
        lines.append("(best): the confirmed best candidate within budget")
    for comparison in confirmed.get("comparisons", []):
        lines.append(f"{comparison['sentence']} ({comparison['detectable_sentence']})")
    if not confirmed.get("comparisons"):
        lines.append("no candidate and baseline share a finished seed: no verdict")
    for failure in confirmed.get("failed", []):
        lines.append(f"trial {failure['trial']} seed {failure['seed']} failed: {failure['reason']}")
    fidelity = confirmed.get("fidelity")
    if fidelity:
        low, high = fidelity["interval"]
        lines.append(
            f"the search's cheap score ranked the {fidelity['n']} confirmed models at Kendall "
            f"tau {fidelity['kendall_tau']:.2f} (bootstrap 95% [{low:.2f}, {high:.2f}])"
        )
    return lines


def confirmed_renderable(confirmed: dict[str, Any]) -> RenderableType:
    table = Table(title="Confirmed by seeded retraining (archsearch confirm)")
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if index == 0 else "right")
    for row in model_rows(confirmed):
        table.add_row(*row)
    return Group(table, *(Text(f"- {line}") for line in describe_lines(confirmed)))


def confirmed_markdown(confirmed: dict[str, Any]) -> str:
    lines = [
        "### Confirmed by seeded retraining",
        "",
        markdown_table(HEADERS, model_rows(confirmed)),
        "",
        *(f"- {line}" for line in describe_lines(confirmed)),
    ]
    return "\n".join(lines) + "\n"
