"""The search driver: Optuna samplers run through Ray Tune, results in an RDB study.

The driver is imported on first use, not with the package: every command's argument parser
reads ``archsearch.search.defaults``, and importing Optuna and torch there would make
``archsearch --help``, ``archsearch profiles`` and every input error wait seconds for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archsearch.search.driver import SearchOptions, run_search

__all__ = ["SearchOptions", "run_search"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from archsearch.search import driver

        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
