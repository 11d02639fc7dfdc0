"""Layer registry for the model code: families are found by name in ``archsearch.families``.

A family's spec (torch-free) holds its settings, costs and capabilities and names its PyTorch
module; ``spec.build(ctx)`` imports and builds it. This module keeps the names the model code
and older callers use.
"""

from __future__ import annotations

from archsearch.families import BlockContext, FamilySpec, attention_spec, ffn_spec, specs

Family = FamilySpec
ATTENTION: dict[str, FamilySpec] = specs("attention")
FFN: dict[str, FamilySpec] = specs("ffn")

__all__ = ["ATTENTION", "FFN", "BlockContext", "Family", "attention_family", "ffn_family"]


def attention_family(name: str) -> FamilySpec:
    return attention_spec(name)


def ffn_family(name: str) -> FamilySpec:
    return ffn_spec(name)
