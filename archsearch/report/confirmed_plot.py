"""The confirm's picture: each confirmed model's mean validation bpb over seeds against its
MACs, with its 95% interval, baselines marked, attached to the study beside the Pareto plots.

Drawn from the stored ``confirmed`` summary alone (plain data), like the confirmed table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archsearch.errors import InputError
from archsearch.report.plots import EXTRA_HINT


def confirmed_stem(study_name: str, confirmed: dict[str, Any]) -> str:
    """File name stem; names factor, seeds and finished runs so a grown confirm gets new files
    (artifacts are attached once per file name)."""
    from archsearch.export.naming import safe_name

    runs = sum(len(model.get("runs", {})) for model in confirmed.get("models", []))
    return (
        f"{safe_name(study_name)}-confirmed-{confirmed['factor']:g}x-"
        f"{confirmed['seeds']}seeds-{runs}runs"
    )


def write_confirmed_png(confirmed: dict[str, Any], path: Path, title: str = "") -> Path:
    """Mean val_bpb against Mult-Adds, an error bar per model from its interval (none with
    one seed), candidates in blue, baselines as red stars, the confirmed best ringed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(f"matplotlib is needed for PNG plots: {EXTRA_HINT}", key="plot") from None
    models = [m for m in confirmed.get("models", []) if m.get("estimate") and m.get("macs")]
    if not models:
        raise InputError("the confirm has no finished model to plot", key="confirmed")
    lost = set(confirmed.get("lost", []))
    figure = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = figure.subplots()
    for model in models:
        estimate = model["estimate"]
        mean = estimate["mean"]
        has_interval = estimate.get("low") is not None
        error = [[mean - estimate["low"]], [estimate["high"] - mean]] if has_interval else None
        baseline = model.get("baseline") is not None
        ax.errorbar(
            [model["macs"]],
            [mean],
            yerr=error,
            fmt="*" if baseline else "o",
            markersize=12 if baseline else 7,
            color="tab:red" if baseline else ("0.45" if model["trial"] in lost else "tab:blue"),
            capsize=4,
            zorder=3,
        )
        label = model["name"] + (" (lost)" if model["trial"] in lost else "")
        if model["trial"] == confirmed.get("best"):
            ax.scatter([model["macs"]], [mean], s=260, facecolors="none", edgecolors="tab:green")
            label += " (best)"
        ax.annotate(
            label, (model["macs"], mean), fontsize=8, xytext=(6, 4), textcoords="offset points"
        )
    for baseline in [m for m in models if m.get("baseline") is not None]:
        ax.axhline(baseline["estimate"]["mean"], color="tab:red", lw=0.8, ls=":", alpha=0.6)
    ax.set_xlabel("Mult-Adds (multiply-adds for one sequence)")
    ax.set_ylabel("confirmed validation bpb (lower is better)")
    ax.grid(alpha=0.3)
    figure.suptitle(
        f"{title}\nretrained from scratch at {confirmed['factor']:g}x the recipe's budget, "
        f"{confirmed['seeds']} seed(s) each; bars: 95% interval of the mean over seeds",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
