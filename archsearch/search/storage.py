"""Study storage: an Optuna RDB storage (SQLite file by default), written by the driver only."""

from __future__ import annotations

from pathlib import Path

import optuna

from archsearch.errors import InputError
from archsearch.search.defaults import DEFAULT_STORAGE  # noqa: F401  (re-exported)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDBStorage for ``url``; creates the folder of a SQLite file so a first run just works."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
        message = f"cannot open storage: {exc.__class__.__name__}: {exc}"
        raise InputError(message, key="--storage") from None


def run_folder(url: str) -> Path:
    """Where Ray Tune's own files go: next to a SQLite file, else ./runs."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).resolve().parent
    return Path("runs").resolve()
