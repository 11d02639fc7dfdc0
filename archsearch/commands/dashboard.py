"""``archsearch dashboard``: optuna-dashboard on the study storage, bound to 127.0.0.1."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dashboard = subparsers.add_parser("dashboard", help="open the studies in optuna-dashboard")
    dashboard.add_argument("--storage", default=DEFAULT_STORAGE)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default local)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch.errors import InputError

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise InputError(
            "optuna-dashboard is not installed: pip install 'archsearch[dashboard]'",
            key="dashboard",
        ) from None
    from archsearch.search.storage import open_storage

    storage = open_storage(args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/ (Ctrl-C to stop)")
    run_server(storage, host=args.host, port=args.port)
    return 0
