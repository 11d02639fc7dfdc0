"""Pareto plots of a study: quality against each cost, as PNG (matplotlib) and HTML (plotly).

One panel per cost axis: the study's cost objectives, MACs always, and any other cost metric of
``archsearch.profiles.COST_METRICS`` (latency, memory, ...) that every plotted trial records as a
user attribute. Each panel shows the trials trained within budget, the ones on the study's
(multi-objective) Pareto front, the two-dimensional front of that panel as a step line, the
baselines and the profile's budget on that axis. Both renderers draw the same ``Panel`` data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna

from archsearch.errors import InputError
from archsearch.report.architecture import wide_arch
from archsearch.report.formatting import format_value
from archsearch.search import trial_attrs as attrs
from archsearch.search import trials as select
from archsearch.search.quality import DEFAULT_QUALITY, Quality
from archsearch.search.trials import front_trials

EXTRA_HINT = "pip install 'archsearch[report]'"


@dataclass(frozen=True)
class Point:
    trial: int
    quality: float
    cost: float
    on_front: bool  # on the study's multi-objective front
    baseline: str | None
    text: str  # hover / annotation text

    @property
    def label(self) -> str:
        return f"{self.trial} ({self.baseline})" if self.baseline else str(self.trial)


@dataclass(frozen=True)
class Panel:
    metric: str
    axis_title: str
    points: list[Point]
    frontier: list[Point]  # non-dominated in (cost, quality), by increasing cost
    budget: float | None
    quality: Quality = DEFAULT_QUALITY  # the study's quality objective: y axis, direction


def cost_axes(study: optuna.Study, trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    """Cost objectives, MACs, then other known cost metrics every trial records."""
    from archsearch.profiles import COST_METRICS

    objectives = select.objective_names(study)[1:]
    axes = list(dict.fromkeys([*objectives, attrs.MACS]))
    for name in COST_METRICS:
        if name in axes or name in ("params", "total_params"):
            continue
        if trials and all(_number(t.user_attrs.get(name)) is not None for t in trials):
            axes.append(name)
    return axes


def panels(study: optuna.Study) -> list[Panel]:
    from archsearch.profiles import COST_METRICS

    quality = select.quality(study)
    trials = select.usable_trials(study)
    front = {t.number for t in front_trials(study)}
    budgets = study.user_attrs.get("profile", {}).get("budgets", {})
    out = []
    for metric in cost_axes(study, trials):
        points = []
        for trial in trials:
            cost = _cost(study, trial, metric)
            if cost is None:
                continue
            value = trial.values[0]
            shown = format_value(quality.name, value)
            text = (
                f"trial {trial.number}: {quality.name} {shown}, {metric} {cost:,.0f}"
                f"<br>{wide_arch(trial.user_attrs.get(attrs.ARCH, {}))}"
            )
            points.append(
                Point(
                    trial.number,
                    value,
                    cost,
                    trial.number in front,
                    select.baseline_name(trial),
                    text,
                )
            )
        title = f"{metric} ({getattr(COST_METRICS.get(metric), 'description', metric)})"
        front_2d = frontier(points, maximize=quality.maximize)
        out.append(Panel(metric, title, points, front_2d, budgets.get(metric), quality))
    return out


def frontier(points: list[Point], *, maximize: bool = False) -> list[Point]:
    """Points no other point beats on both cost and quality: lower cost is better, and lower
    quality values (``val_bpb``) or, with ``maximize``, higher ones (a proxy score). Points
    with equal cost and quality beat neither each other, so all of them are kept, as on the
    study's own front (a repeated configuration scores the same)."""
    sign = -1.0 if maximize else 1.0
    ordered = sorted(points, key=lambda p: (p.cost, sign * p.quality, p.trial))
    kept: list[Point] = []
    for point in ordered:
        last = kept[-1] if kept else None
        tied = last is not None and (point.cost, point.quality) == (last.cost, last.quality)
        if last is None or tied or sign * point.quality < sign * last.quality:
            kept.append(point)
    return kept


def plot_stem(study: optuna.Study) -> str:
    """File name stem; names the number of trials so a grown study gets new files."""
    from archsearch.export.naming import safe_name

    return f"{safe_name(study.study_name)}-pareto-{len(study.trials)}trials"


def write_png(study: optuna.Study, path: Path) -> Path:
    """Quality against each cost axis as one PNG (matplotlib's Agg canvas, no display)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(f"matplotlib is needed for PNG plots: {EXTRA_HINT}", key="plot") from None
    data = _require_points(study)
    figure = Figure(figsize=(max(7.0, 5.5 * len(data)), 4.8), layout="constrained")
    axes = figure.subplots(1, len(data), squeeze=False)[0]
    for ax, panel in zip(axes, data, strict=True):
        others = [p for p in panel.points if not p.on_front and not p.baseline]
        front = [p for p in panel.points if p.on_front and not p.baseline]
        baselines = [p for p in panel.points if p.baseline]
        groups = (
            (others, {"c": "0.6", "s": 18}, "trained within budget"),
            (front, {"c": "tab:blue", "s": 36, "zorder": 3}, "Pareto front (all objectives)"),
            (baselines, {"c": "tab:red", "s": 120, "marker": "*", "zorder": 4}, "baselines"),
        )
        for points, style, name in groups:
            if points:
                ax.scatter(
                    [p.cost for p in points], [p.quality for p in points], label=name, **style
                )
        ax.step(
            [p.cost for p in panel.frontier],
            [p.quality for p in panel.frontier],
            where="post",
            c="tab:blue",
            lw=1,
            alpha=0.6,
        )
        for point in [*front, *baselines]:
            ax.annotate(
                point.label,
                (point.cost, point.quality),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        if panel.budget is not None:
            ax.axvline(panel.budget, ls="--", c="tab:red", lw=1, label="budget")
        ax.set_xlabel(panel.axis_title)
        better = "higher" if panel.quality.maximize else "lower"
        ax.set_ylabel(f"{panel.quality.name} ({better} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(_title(study), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def plotly_figure(study: optuna.Study):  # -> plotly.graph_objects.Figure
    """The interactive figure: one subplot per cost axis, trial details on hover."""
    try:
        from plotly import graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise InputError(f"plotly is needed for HTML plots: {EXTRA_HINT}", key="plot") from None
    data = _require_points(study)
    figure = make_subplots(rows=1, cols=len(data), subplot_titles=[p.metric for p in data])
    for column, panel in enumerate(data, start=1):
        groups = (
            ("trained within budget", [p for p in panel.points if not p.on_front], "#999999"),
            ("Pareto front", [p for p in panel.points if p.on_front and not p.baseline], "#1f77b4"),
            ("baselines", [p for p in panel.points if p.baseline], "#d62728"),
        )
        for name, points, color in groups:
            figure.add_trace(
                go.Scatter(
                    x=[p.cost for p in points],
                    y=[p.quality for p in points],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=column == 1,
                    marker={"color": color, "size": 12 if name == "baselines" else 8},
                    hovertext=[p.text for p in points],
                    hoverinfo="text",
                ),
                row=1,
                col=column,
            )
        figure.add_trace(
            go.Scatter(
                x=[p.cost for p in panel.frontier],
                y=[p.quality for p in panel.frontier],
                mode="lines",
                line={"shape": "hv", "color": "#1f77b4", "width": 1},
                name=f"front in {panel.metric}",
                showlegend=False,
                hoverinfo="skip",
            ),
            row=1,
            col=column,
        )
        if panel.budget is not None:
            figure.add_vline(
                x=panel.budget, line_dash="dash", line_color="#d62728", row=1, col=column
            )
        figure.update_xaxes(title_text=panel.axis_title, row=1, col=column)
        figure.update_yaxes(title_text=panel.quality.name, row=1, col=column)
    figure.update_layout(title=_title(study), template="plotly_white")
    return figure


def write_html(study: optuna.Study, path: Path) -> Path:
    """A self-contained page (plotly.js embedded): it opens offline and inside the dashboard."""
    figure = plotly_figure(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(str(path), include_plotlyjs=True, full_html=True, div_id="pareto")
    return path


def _require_points(study: optuna.Study) -> list[Panel]:
    data = panels(study)
    if not any(panel.points for panel in data):
        raise InputError(
            f"study '{study.study_name}' has no trial trained within budget to plot", key="--study"
        )
    return data


def _cost(study: optuna.Study, trial: optuna.trial.FrozenTrial, metric: str) -> float | None:
    values = select.objective_values(study, trial)
    if metric in values:
        return values[metric]
    return _number(trial.user_attrs.get(metric))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _title(study: optuna.Study) -> str:
    profile = study.user_attrs.get("profile", {})
    name = select.quality(study).name
    return f"{study.study_name}: {name} against cost, profile {profile.get('name', '?')}"
