"""Subcommands of ``archsearch``, one module each.

A module here defines ``add_parser(subparsers)``, which adds its parser and sets
``handler=<function taking the parsed args and returning an exit status>``. Modules import
heavy dependencies (torch, ray) inside their handler, so ``--help`` stays fast.
"""

from __future__ import annotations

import pkgutil

COMMANDS = sorted(
    info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")
)
