"""Model-side name of the family checks (they live, torch-free, in ``archsearch.families``)."""

from __future__ import annotations

from archsearch.families.validate import validate_config

__all__ = ["validate_config"]
