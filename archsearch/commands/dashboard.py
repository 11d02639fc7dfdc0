"""``archsearch dashboard``: optuna-dashboard on an existing study storage, bound to 127.0.0.1,
with the artifact store that ``archsearch plot`` attaches plots to."""

from __future__ import annotations

import argparse

from archsearch.search.defaults import DEFAULT_STORAGE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    dashboard = subparsers.add_parser("dashboard", help="open the studies in optuna-dashboard")
    dashboard.add_argument("--storage", default=DEFAULT_STORAGE)
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default local)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.add_argument(
        "--artifact-dir", default=None, help="artifact store (default: next to db)"
    )
    dashboard.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archsearch.errors import InputError

    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise InputError(
            "optuna-dashboard is not installed: pip install 'archsearch[dashboard]'",
            key="dashboard",
        ) from None
    from archsearch.report.artifacts import artifact_dir, artifact_store
    from archsearch.report.reading import open_existing_storage

    # Writable: the dashboard saves notes and uploads; but it must open an existing database.
    storage = open_existing_storage(args.storage, writable=True)
    folder = Path(args.artifact_dir) if args.artifact_dir else artifact_dir(args.storage)
    print(
        f"optuna-dashboard on http://{args.host}:{args.port}/ (artifacts: {folder}; Ctrl-C stops)"
    )
    run_server(storage, host=args.host, port=args.port, artifact_store=artifact_store(folder))
    return 0
