"""Study storage: an Optuna RDB storage on any SQLAlchemy URL, written by the driver only.

SQLite (the default, ``sqlite:///runs/archsearch.db``) suits one driver on one machine. For
studies shared between machines or read while another process writes, use a server database,
e.g. PostgreSQL: ``pip install psycopg2-binary`` and
``--storage postgresql+psycopg2://user:password@host:5432/archsearch``.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from archsearch.errors import InputError
from archsearch.search.defaults import DEFAULT_STORAGE  # noqa: F401  (re-exported)


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (sqlite:///a.db, sqlite+pysqlite:///a.db), else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``; creates the folder of a SQLite file so a first run just works."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
        message = f"cannot open storage: {exc.__class__.__name__}: {exc}"
        raise InputError(message, key="--storage") from None


def run_folder(url: str) -> Path:
    """Where Ray Tune's own files go: next to a SQLite file, else ./runs."""
    path = sqlite_file(url)
    if path is not None:
        return path.resolve().parent
    return Path("runs").resolve()
