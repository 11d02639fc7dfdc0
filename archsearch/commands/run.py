"""``archsearch run``: search a space under a hardware profile."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="search a space under a hardware profile")
    run.add_argument("--profile", default="mobile_100M", help="built-in name or YAML path")
    run.add_argument("--space", default="tiny_lm", help="built-in name or YAML path")
    run.add_argument("--evaluator", default="lm_brief", help="built-in name or YAML path")
    run.add_argument("--trials", type=int, default=12, help="trained candidates in the study")
    run.add_argument("--workers", type=int, default=2, help="parallel trials, one thread each")
    run.add_argument("--storage", default=DEFAULT_STORAGE, help="SQLAlchemy URL of the study")
    run.add_argument("--study", default=None, help="study name (default: space.profile.evaluator)")
    run.add_argument("--seed", type=int, default=0, help="sampler seed")
    run.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"))
    run.add_argument("--address", default=None, help="join this Ray cluster instead of a local one")
    run.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from rich.console import Console

    from archsearch.report.front import print_front
    from archsearch.search import SearchOptions, run_search

    options = SearchOptions(
        profile=args.profile,
        space=args.space,
        evaluator=args.evaluator,
        trials=args.trials,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        seed=args.seed,
        sampler=args.sampler,
        address=args.address,
        timeout=args.timeout,
    )
    console = Console()
    summary = run_search(options, console=console)
    console.print(
        f"study '{summary.study_name}': {summary.trained} trained, "
        f"{summary.rejected_infeasible} rejected over budget, "
        f"{summary.rejected_invalid} rejected as invalid, {summary.wall_s:.0f} s this run"
    )
    print_front(console, summary.storage, summary.study_name)
    console.print(
        f"open it: archsearch dashboard --storage {summary.storage}   "
        f"(or: optuna-dashboard {summary.storage})"
    )
    return 0
