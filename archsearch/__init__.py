"""archsearch: search for efficient Transformer architectures under a hardware budget.

The public API is small and stable; heavier modules (torch, ray) are imported on first use so
that ``archsearch --help`` and input validation stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archsearch.config import ArchConfig, LayerConfig
from archsearch.errors import InputError

__version__ = "0.1.0"

__all__ = [
    "ArchConfig",
    "InputError",
    "LayerConfig",
    "build_model",
    "estimate_costs",
    "load_profile",
    "load_space",
]

if TYPE_CHECKING:  # pragma: no cover
    from archsearch.costs import estimate_costs
    from archsearch.models import build_model
    from archsearch.profiles import load_profile
    from archsearch.space import load_space

_LAZY = {
    "build_model": "archsearch.models",
    "estimate_costs": "archsearch.costs",
    "load_profile": "archsearch.profiles",
    "load_space": "archsearch.space",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archsearch' has no attribute {name!r}")
