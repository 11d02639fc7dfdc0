"""Fitted predictors read from the cache folder: once per process, again when the file changes.

A search asks for a latency figure per trial; reading and parsing the JSON each time would cost
more than the prediction. An unreadable file is the user's to fix, so it is an ``InputError``
that says how to make it again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from archsearch.errors import InputError

T = TypeVar("T")

_LOADED: dict[Path, tuple[float, Any]] = {}


def load_stored(path: Path, load: Callable[[Path], T], what: str, remake: str) -> T | None:
    """What ``load`` reads from ``path`` (None when there is no file); an unreadable file is
    named as ``what`` with ``remake`` saying how to make it again."""
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        found = load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"unreadable {what} ({exc}); {remake}", source=str(path)) from None
    _LOADED[path] = (stamp, found)
    return found


def forget_loaded() -> None:
    """Drop every cached predictor (tests that rewrite a file within one clock tick)."""
    _LOADED.clear()
