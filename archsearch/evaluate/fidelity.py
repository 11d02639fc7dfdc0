"""Moved to the ``archsearch.fidelity`` package; kept while ``confirm/summary.py`` imports it."""

from __future__ import annotations

from archsearch.fidelity import *  # noqa: F403
from archsearch.fidelity import __all__  # noqa: F401
