"""One confirm from start to end: select, plan, run what is missing, judge, store, print.

Kept apart from the command module so tests and ``run --confirm`` call it directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from archsearch.errors import InputError


def confirm_study(
    storage_url: str,
    study_name: str,
    *,
    top: int,
    seeds: int,
    factor: float,
    workers: int,
    address: str | None = None,
    console: Any = None,
    references: Path | None = None,
) -> dict[str, Any]:
    """Confirm ``study_name``'s front against its baselines; returns the stored summary.

    ``references``: the fidelity journal its seed-0 runs are appended to (``references.py``);
    default ``<run folder>/fidelity/<study>.references.jsonl``.
    """
    import optuna

    from archsearch.confirm.runs import (
        close_interrupted,
        completed_runs,
        confirm_recipe,
        failed_runs,
        open_companion,
        plan,
    )
    from archsearch.confirm.selection import select_models
    from archsearch.confirm.summary import STUDY_ATTR, build_summary
    from archsearch.evaluate.recipe import Recipe
    from archsearch.report.reading import load_existing_study
    from archsearch.search.storage import run_folder

    if console is None:
        from rich.console import Console

        console = Console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_existing_study(storage_url, study_name, writable=True)
    record = study.user_attrs.get("evaluator")
    if not isinstance(record, dict):
        raise InputError(
            f"study '{study_name}' records no evaluator recipe (not made by `archsearch run`)",
            key="--study",
        )
    base = Recipe.from_dict(record)
    models = select_models(study, top)
    companion = open_companion(study._storage, study_name)
    closed = close_interrupted(companion)
    jobs, done = plan(companion, models, seeds, factor)
    budget = confirm_recipe(base, factor, 0).token_budget
    candidates = sum(m.baseline is None for m in models)
    console.print(
        f"confirming {candidates} front candidate(s) and {len(models) - candidates} baseline(s) "
        f"of '{study_name}', {seeds} seed(s) each, at {factor:g}x the recipe's budget "
        f"({budget:,} tokens): {len(jobs)} run(s) to train, {done} already done"
        + (f", {closed} interrupted run(s) closed and trained again" if closed else "")
    )
    if jobs:
        _run(companion, jobs, base, workers, address, run_folder(storage_url), study_name, console)
    summary = build_summary(
        models,
        completed_runs(companion, factor, seeds),
        factor=factor,
        seeds=seeds,
        token_budget=budget,
        recipe=base.name,
        companion=companion.study_name,
        failed=failed_runs(companion, factor),
    )
    study.set_user_attr(STUDY_ATTR, summary)
    from archsearch.report.confirmed import confirmed_renderable

    console.print(confirmed_renderable(summary))
    _attach_plot(study, storage_url, summary, console)
    _append_references(companion, base, factor, references, storage_url, study_name, console)
    return summary


def _append_references(
    companion: Any,
    base: Any,
    factor: float,
    path: Path | None,
    storage_url: str,
    study_name: str,
    console: Any,
) -> None:
    from archsearch.confirm.references import append_references, reference_entries
    from archsearch.export.naming import safe_name
    from archsearch.search.storage import run_folder

    entries = reference_entries(companion, base, factor)
    if not entries:
        return
    if path is None:
        path = run_folder(storage_url) / "fidelity" / f"{safe_name(study_name)}.references.jsonl"
    new = append_references(path, entries)
    console.print(
        f"{len(entries)} seed-0 run(s) are fidelity references at --factor {factor:g} "
        f"({new} new in {path}; `archsearch fidelity --save {path}` reuses them)"
    )


def _attach_plot(study: Any, storage_url: str, summary: dict[str, Any], console: Any) -> None:
    """The confirmed-quality picture, written beside the Pareto plots and attached to the study
    (the dashboard lists it); a missing plotting extra is said, not fatal."""
    from archsearch.report.artifacts import artifact_dir, artifact_store, attach
    from archsearch.report.confirmed_plot import confirmed_stem, write_confirmed_png
    from archsearch.search.storage import run_folder

    path = run_folder(storage_url) / "plots" / f"{confirmed_stem(study.study_name, summary)}.png"
    try:
        write_confirmed_png(summary, path, title=f"study '{study.study_name}'")
    except InputError as exc:
        console.print(f"no confirmed plot: {exc.message}")
        return
    (artifact_id,) = attach(study, artifact_store(artifact_dir(storage_url)), [path]).values()
    console.print(f"wrote {path} (attached to the study as artifact {artifact_id})")


def _run(
    companion: Any,
    jobs: list,
    base: Any,
    workers: int,
    address: str | None,
    folder: Any,
    study_name: str,
    console: Any,
) -> None:
    from archsearch.confirm.runs import execute
    from archsearch.search.ray_session import ensure_ray

    started = ensure_ray(address, num_cpus=workers)
    clock = time.perf_counter()
    finished = [0]

    def report(job: Any, result: dict[str, Any]) -> None:
        finished[0] += 1
        what = (
            f"failed: {result['failed']}"
            if "failed" in result
            else f"{result['val_bpb']:.4f} bpb" + (" (resumed)" if result.get("resumed") else "")
        )
        console.print(
            f"[{finished[0]}/{len(jobs)}] {job.model.name} seed {job.seed}: {what}  "
            f"{time.perf_counter() - clock:.0f} s"
        )

    try:
        execute(
            companion,
            jobs,
            base,
            workers=workers,
            folder=folder,
            study_name=study_name,
            on_result=report,
        )
    finally:
        if started:
            import ray

            ray.shutdown()
