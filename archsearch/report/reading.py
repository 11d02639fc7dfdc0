"""Open an existing study without ever creating one: reports and exports only read.

``archsearch.search.storage.open_storage`` creates the folder (and SQLAlchemy the file) of a
SQLite URL so that a first ``archsearch run`` just works. A report on a mistyped path must say so
instead, and leave no empty database behind, so SQLite files are checked first and opened
read-only (SQLite's ``mode=ro`` URI) when nothing is to be written.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import optuna

from archsearch.errors import InputError

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(url: str) -> Path | None:
    """The file behind a plain ``sqlite:///path`` URL; None for other databases and URI forms."""
    if not url.startswith(SQLITE_PREFIX) or "?" in url:
        return None
    path = url[len(SQLITE_PREFIX) :]
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return Path(path)


def open_existing_storage(url: str, *, writable: bool = False) -> optuna.storages.RDBStorage:
    """An RDBStorage on a database that must already hold Optuna's tables.

    A missing SQLite file is an ``InputError`` naming ``--storage``; nothing is created. Without
    ``writable`` a SQLite file is opened read-only, so a report can never modify a study.
    """
    path = sqlite_path(url)
    target = url
    if path is not None:
        if not path.is_file():
            raise InputError(
                f"no study database at {path} (run `archsearch run` first, or pass --storage)",
                key="--storage",
            )
        if not writable:
            target = f"sqlite:///file:{quote(str(path.resolve()))}?mode=ro&uri=true"
    try:
        storage = optuna.storages.RDBStorage(target, skip_table_creation=True)
        storage.get_all_studies()  # fails here, not later, when the file is no Optuna database
    except Exception as exc:  # SQLAlchemy and Optuna raise many kinds for a bad database
        detail = str(exc).strip().splitlines()
        reason = f"{exc.__class__.__name__}: {detail[0] if detail else ''}".rstrip(": ")
        what = f"{path} is not an Optuna study database" if path else f"cannot open {url}"
        raise InputError(f"{what} ({reason})", key="--storage") from None
    return storage


def load_existing_study(url: str, study_name: str, *, writable: bool = False) -> optuna.Study:
    """The named study of an existing database; lists the studies there when the name is wrong."""
    storage = open_existing_storage(url, writable=writable)
    names = [summary.study_name for summary in storage.get_all_studies()]
    if study_name not in names:
        known = ", ".join(names) or "none"
        raise InputError(f"no study '{study_name}' in {url} (studies: {known})", key="--study")
    return optuna.load_study(study_name=study_name, storage=storage)
