"""``archsearch plot --study S``: Pareto plots (PNG and HTML) attached to the study as artifacts,
so optuna-dashboard shows them."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    plot = subparsers.add_parser("plot", help="Pareto plots of a study, attached as artifacts")
    plot.add_argument("--study", required=True)
    plot.add_argument("--storage", default=DEFAULT_STORAGE)
    plot.add_argument("--out", default=None, help="folder for the files (default: next to the db)")
    plot.add_argument("--artifact-dir", default=None, help="artifact store (default: next to db)")
    plot.add_argument("--no-attach", action="store_true", help="write the files only")
    plot.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archsearch.report.artifacts import artifact_dir, artifact_store, attach
    from archsearch.report.confirmed import confirmed_of
    from archsearch.report.confirmed_plot import confirmed_stem, write_confirmed_png
    from archsearch.report.plots import plot_stem, write_html, write_png
    from archsearch.report.reading import load_existing_study
    from archsearch.search.storage import run_folder

    study = load_existing_study(args.storage, args.study, writable=not args.no_attach)
    out = Path(args.out) if args.out else run_folder(args.storage) / "plots"
    stem = plot_stem(study)
    paths = [write_png(study, out / f"{stem}.png"), write_html(study, out / f"{stem}.html")]
    confirmed = confirmed_of(study)
    if confirmed is not None:  # the confirm's picture too (confirm itself writes it as well)
        png = out / f"{confirmed_stem(study.study_name, confirmed)}.png"
        paths.append(write_confirmed_png(confirmed, png, title=f"study '{study.study_name}'"))
    for path in paths:
        print(f"wrote {path}")
    if not args.no_attach:
        folder = Path(args.artifact_dir) if args.artifact_dir else artifact_dir(args.storage)
        for name, artifact_id in attach(study, artifact_store(folder), paths).items():
            print(f"attached {name} to study '{study.study_name}' (artifact {artifact_id})")
        print(f"see them: archsearch dashboard --storage {args.storage}")
    return 0
