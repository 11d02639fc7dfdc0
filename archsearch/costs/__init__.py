"""Costs of an architecture: analytic MACs and parameters (memory and latency build on these)."""

from __future__ import annotations

from typing import Any

from archsearch.config import ArchConfig
from archsearch.costs.analytic import Costs, analytic_costs
from archsearch.costs.convention import CountingConvention

__all__ = ["Costs", "CountingConvention", "estimate_costs"]


def estimate_costs(config: ArchConfig, profile_or_convention: Any = None) -> Costs:
    """MACs and parameters of ``config`` under a profile's convention (or a convention itself).

    With nothing given, uses the default convention: 30 tokens, embedding table and output
    layer excluded.
    """
    if profile_or_convention is None:
        convention = CountingConvention()
    elif isinstance(profile_or_convention, CountingConvention):
        convention = profile_or_convention
    else:
        convention = profile_or_convention.convention
    return analytic_costs(config, convention)
