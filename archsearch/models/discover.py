"""Import every module of a family package, so adding a family is adding one file."""

from __future__ import annotations

import importlib
import pkgutil


def import_all(package_name: str, package_path: list[str]) -> None:
    """Import each submodule; each registers its families on import."""
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda i: i.name):
        importlib.import_module(f"{package_name}.{info.name}")
