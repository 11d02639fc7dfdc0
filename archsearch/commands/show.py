"""``archsearch show --study S``: the Pareto front of a study."""

from __future__ import annotations

import argparse
import json

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    show = subparsers.add_parser("show", help="the Pareto front of a study")
    show.add_argument("--study", required=True)
    show.add_argument("--storage", default=DEFAULT_STORAGE)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from archsearch.report.front import pareto_front, print_front
    from archsearch.search.study import load_study

    if args.json:
        study = load_study(args.storage, args.study)
        rows = [row.__dict__ for row in pareto_front(study)]
        print(json.dumps({"study": args.study, "front": rows}, indent=2, default=str))
        return 0
    print_front(Console(), args.storage, args.study)
    return 0
