"""``StudySummary`` for people: Rich tables in the terminal, or the same cells as Markdown."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from archsearch.report.architecture import compact_arch, wide_arch
from archsearch.report.formatting import MISSING, format_value, objective_label, short_number
from archsearch.report.markdown import markdown_table
from archsearch.report.summary import StudySummary, TrialRow

SUPERNET_COLUMN = "supernet_bpb"  # beside a finalist's trained score: what the supernet said
LOST = "(lost)"  # a front point a baseline beat; the legend under the tables says which way
LOST_LEGEND = (
    f"{LOST}: worse than a baseline when retrained from scratch with seeds (archsearch confirm; "
    "its interval excludes zero)"
)


def trial_headers(
    objectives: list[str],
    directions: dict[str, str] | None = None,
    *,
    supernet: bool = False,
    wide: bool = False,
) -> list[str]:
    """The tables' columns; ``status`` only when ``wide`` (the front, the baselines and the
    best trials are all complete trials; the column is there for reading raw rows)."""
    directions = directions or {}
    labels = [objective_label(name, directions.get(name, "minimize")) for name in objectives]
    extra = [SUPERNET_COLUMN] if supernet else []
    return ["trial", *labels, *extra, "params", *(["status"] if wide else []), "architecture"]


def trial_cells(
    row: TrialRow,
    objectives: list[str],
    label: str | None = None,
    *,
    supernet: bool = False,
    wide: bool = False,
) -> list[str]:
    name = label or (f"{row.number} ({row.baseline})" if row.baseline else str(row.number))
    values = [format_value(name_, row.values.get(name_)) for name_ in objectives]
    if supernet:
        values.append(MISSING if row.supernet_bpb is None else f"{row.supernet_bpb:.4f}")
    if wide:
        return [name, *values, format_value("params", row.params), row.status, wide_arch(row.arch)]
    return [name, *values, format_value("params", row.params), compact_arch(row.arch)]


def sections(
    summary: StudySummary, *, wide: bool = False
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of each table, shared by the Rich and Markdown views; the
    architecture column is compact unless ``wide``."""
    objectives, directions = summary.objectives, summary.directions
    rows = [*summary.front, *summary.baselines.values(), *summary.best.values()]
    supernet = any(row.supernet_bpb is not None for row in rows)
    headers = trial_headers(objectives, directions, supernet=supernet, wide=wide)
    front = [
        trial_cells(row, objectives, f"{row.number} {LOST}", supernet=supernet, wide=wide)
        if row.number in summary.lost
        else trial_cells(row, objectives, supernet=supernet, wide=wide)
        for row in summary.front
    ]
    baselines = [
        trial_cells(row, objectives, name, supernet=supernet, wide=wide)
        for name, row in summary.baselines.items()
    ]
    best = [
        trial_cells(
            row,
            objectives,
            f"{_extreme(directions.get(name))} {name}: {row.number}",
            supernet=supernet,
            wide=wide,
        )
        for name, row in summary.best.items()
    ]
    return [
        ("Pareto front (trained within budget)", headers, front),
        ("Baselines", headers, baselines),
        ("Best trial per objective", headers, best),
    ]


def _is_text(index: int, header: str) -> bool:
    return index == 0 or header in ("status", "architecture")


def _extreme(direction: str | None) -> str:
    return "max" if direction == "maximize" else "min"


def header_lines(summary: StudySummary) -> list[str]:
    profile = summary.profile
    convention = profile.get("convention", {}).get("description", "")
    fingerprint = (summary.data_fingerprint or MISSING)[:16]
    lines = [
        f"study '{summary.study}': profile {profile.get('name', MISSING)}, evaluator "
        f"{summary.evaluator.get('name', MISSING)}, data {fingerprint}, archsearch "
        f"{summary.archsearch_version or MISSING}",
        convention,
    ]
    if not summary.quality.trains:
        lines.append(f"quality: {summary.quality.describe()}; no candidate was trained")
    return lines


def cost_lines(summary: StudySummary) -> list[str]:
    cost = summary.cost
    counts = ", ".join(f"{n} {status}" for status, n in cost.counts.items()) or "no trials"
    done, doing = ("trained", "training") if summary.quality.trains else ("scored", "scoring")
    return [
        f"search cost: {short_number(cost.cpu_s / 3600)} CPU h ({done} candidates "
        f"{short_number(cost.trial_cpu_s / 3600)} h, the rest the driver), "
        f"{short_number(cost.wall_s / 3600)} h wall clock",
        f"trials: {cost.trained} {done}, {cost.rejected} rejected before {doing} ({counts})",
    ]


def summary_renderable(summary: StudySummary, *, wide: bool = False) -> RenderableType:
    parts: list[RenderableType] = [Text(line) for line in header_lines(summary) if line]
    for title, headers, rows in sections(summary, wide=wide):
        if not rows:
            parts.append(Text(f"{title}: none in this study", style="dim"))
            continue
        table = Table(title=title, title_justify="left")
        for index, header in enumerate(headers):
            table.add_column(header, justify="left" if _is_text(index, header) else "right")
        for row in rows:
            table.add_row(*row)
        parts.append(table)
    if summary.lost:
        parts.append(Text(LOST_LEGEND, style="dim"))
    parts += [Text(line) for line in cost_lines(summary)]
    return Group(*parts)


def summary_markdown(summary: StudySummary, *, wide: bool = False) -> str:
    lines = [f"## Study `{summary.study}`", ""]
    lines += [f"- {line}" for line in header_lines(summary) if line]
    for title, headers, rows in sections(summary, wide=wide):
        lines += ["", f"### {title}", ""]
        align = "".join("l" if _is_text(i, h) else "r" for i, h in enumerate(headers))
        lines.append(markdown_table(headers, rows, align) if rows else "none in this study")
    if summary.lost:
        lines += ["", LOST_LEGEND]
    lines += ["", "### Search cost", ""]
    lines += [f"- {line}" for line in cost_lines(summary)]
    return "\n".join(lines) + "\n"
