"""``archsearch show --study S``: the Pareto front, baselines, best trials, search cost and the
comparison with the Evolved Transformer's search. Reads the study only; never creates one."""

from __future__ import annotations

import argparse
import json

from archsearch.search.defaults import DEFAULT_STORAGE

FORMATS = ("rich", "md", "json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    show = subparsers.add_parser("show", help="report on a study: front, baselines, cost, table")
    show.add_argument("--study", required=True)
    show.add_argument("--storage", default=DEFAULT_STORAGE)
    show.add_argument("--format", choices=FORMATS, default="rich", help="terminal, Markdown, JSON")
    show.add_argument("--json", dest="format", action="store_const", const="json")
    show.add_argument("--markdown", dest="format", action="store_const", const="md")
    show.add_argument(
        "--wide",
        action="store_true",
        help="every per-layer setting in the architecture column (default: families per layer, "
        "identical layers collapsed; --format json always has the whole architecture)",
    )
    show.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch.report.comparison import compare, comparison_markdown, comparison_table
    from archsearch.report.confirmed import confirmed_of
    from archsearch.report.reading import load_existing_study
    from archsearch.report.render import summary_markdown, summary_renderable
    from archsearch.report.summary import summarize

    study = load_existing_study(args.storage, args.study)
    summary, comparison = summarize(study), compare(study)
    confirmed = confirmed_of(study)
    if args.format == "json":
        report = {**summary.to_dict(), "comparison": comparison.to_dict()}
        if confirmed is not None:
            report["confirmed"] = confirmed
        print(json.dumps(report, indent=2, default=str))
    elif args.format == "md":
        from archsearch.report.confirmed import confirmed_markdown

        print(summary_markdown(summary, wide=args.wide))
        if confirmed is not None:
            print(confirmed_markdown(confirmed))
        print(comparison_markdown(comparison))
    else:
        from rich.console import Console

        console = Console()
        console.print(summary_renderable(summary, wide=args.wide))
        if confirmed is not None:
            from archsearch.report.confirmed import confirmed_renderable

            console.print(confirmed_renderable(confirmed))
        else:
            console.print(
                f"not confirmed: archsearch confirm --study {args.study} --storage {args.storage}"
            )
        console.print(comparison_table(comparison, wide=args.wide))
        console.print(
            f"plots: archsearch plot --study {args.study} --storage {args.storage}   "
            f"configs: archsearch export --study {args.study} --trial best --format yaml"
        )
    return 0
