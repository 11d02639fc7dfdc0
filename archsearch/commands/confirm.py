"""``archsearch confirm --study S``: retrain the front and the baselines with seeds, and say
whether the search beat the baselines. Rerunning continues: finished runs are kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    confirm = subparsers.add_parser(
        "confirm",
        help="retrain the front and the baselines with seeds; paired verdict",
        description="Train from scratch the best --top front candidates (spread over the "
        "front's MACs, the best-quality one included) and the study's baselines, at --factor "
        "times the study's recipe budget, --seeds seeds each (seed s: initial weights and data "
        "order, the same for every model), and compare each candidate with each baseline seed "
        "by seed. Runs are recorded in the study '<study>.confirm'; running the same command "
        "again trains only what is missing.",
    )
    confirm.add_argument("--study", required=True)
    confirm.add_argument("--storage", default=DEFAULT_STORAGE)
    confirm.add_argument("--top", type=int, default=3, help="front candidates to confirm")
    confirm.add_argument("--seeds", type=int, default=3, help="seeds per model (2+ for intervals)")
    confirm.add_argument(
        "--factor", type=float, default=4.0, help="times the recipe's token budget (default 4)"
    )
    confirm.add_argument("--workers", type=int, default=2, help="parallel runs, one thread each")
    confirm.add_argument(
        "--address", default=None, help="join this Ray cluster instead of starting a local one"
    )
    confirm.add_argument(
        "--save",
        default=None,
        help="fidelity journal to append the seed-0 runs to when --factor is a whole number "
        ">= 2 (they are the long references `archsearch fidelity --factor F` trains); default "
        "<run folder>/fidelity/<study>.references.jsonl",
    )
    confirm.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own start-up and authentication messages and its workers' output "
        "(also: ARCHSEARCH_VERBOSE=1)",
    )
    confirm.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch.errors import InputError
    from archsearch.search.ray_session import set_verbose

    set_verbose(args.verbose)

    for name, value in (("--top", args.top), ("--seeds", args.seeds), ("--workers", args.workers)):
        if value < 1:
            raise InputError(f"must be >= 1, got {value}", key=name)
    if not args.factor > 0:
        raise InputError(f"must be > 0, got {args.factor}", key="--factor")

    from archsearch.confirm.flow import confirm_study

    confirm_study(
        args.storage,
        args.study,
        top=args.top,
        seeds=args.seeds,
        factor=args.factor,
        workers=args.workers,
        address=args.address,
        references=Path(args.save) if args.save else None,
    )
    return 0
