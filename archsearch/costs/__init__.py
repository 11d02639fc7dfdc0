"""Costs of an architecture: analytic MACs and parameters (memory and latency build on these).

``Costs`` and the analytic counter are imported on first use: reading a profile (which needs
only ``CountingConvention``) must stay fast enough to answer a bad flag at once. The analytic
counter reads the family specs and never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from archsearch.config import ArchConfig
from archsearch.costs.convention import CountingConvention

if TYPE_CHECKING:
    from archsearch.costs.analytic import Costs

__all__ = ["Costs", "CountingConvention", "estimate_costs"]


def estimate_costs(config: ArchConfig, profile_or_convention: Any = None) -> Costs:
    """MACs and parameters of ``config`` under a profile's convention (or a convention itself).

    With nothing given, uses the default convention: 30 tokens, embedding table and output
    layer excluded.
    """
    from archsearch.costs.analytic import analytic_costs

    if profile_or_convention is None:
        convention = CountingConvention()
    elif isinstance(profile_or_convention, CountingConvention):
        convention = profile_or_convention
    else:
        convention = profile_or_convention.convention
    return analytic_costs(config, convention)


def __getattr__(name: str) -> Any:
    if name == "Costs":
        from archsearch.costs.analytic import Costs

        return Costs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
