"""``archsearch export --study S --trial best|N --format F --out DIR``: a searched architecture
for other trainers, with its provenance. ``best`` is the trial with the best quality among those
evaluated in full within every budget: the lowest val_bpb, or the highest score in a study
searched with a zero-cost proxy."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import DEFAULT_STORAGE

FORMATS = ("yaml", "json", "pytorch", "onnx", "hf")  # archsearch.export.FORMATS, without imports


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser("export", help="write a trial's architecture for other tools")
    export.add_argument("--study", required=True)
    export.add_argument("--storage", default=DEFAULT_STORAGE)
    export.add_argument(
        "--trial",
        default="best",
        help="'best' (lowest val_bpb, or highest proxy score, within budget) or N",
    )
    export.add_argument("--format", choices=FORMATS, default="yaml")
    export.add_argument("--out", default="exports", help="folder to write into (default ./exports)")
    export.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archsearch.export import export_trial
    from archsearch.report.reading import load_existing_study

    study = load_existing_study(args.storage, args.study)
    for path in export_trial(study, args.trial, args.format, Path(args.out)):
        print(f"wrote {path}")
    return 0
