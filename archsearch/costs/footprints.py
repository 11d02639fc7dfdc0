"""Per-family activation footprints, looked up in the family specs (torch-free).

Each family's spec (``archsearch.families``) counts its own tensors; ``families.footprint``
says what ``saved``, ``peak`` and ``cache`` mean. A family whose spec has no footprint falls
back to full attention's (or the dense FFN's), and ``memory.approximated`` names it in every
estimate, so a new family is never mis-counted silently (the registry tests fail on it too).
"""

from __future__ import annotations

from archsearch.families import BlockContext, attention_spec, ffn_spec, specs
from archsearch.families.footprint import BOOL, F32, I64, Dims, Footprint

__all__ = [
    "BOOL",
    "F32",
    "I64",
    "Dims",
    "Footprint",
    "attention_footprint",
    "ffn_footprint",
    "has_footprint",
]


def has_footprint(kind: str, name: str) -> bool:
    """Whether family ``name`` of ``kind`` counts its own footprint."""
    spec = specs(kind).get(name)
    return spec is not None and spec.footprint is not None


def attention_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    spec = attention_spec(ctx.layer.attention)
    count = spec.footprint or attention_spec("full").footprint
    assert count is not None
    return count(ctx, dims)


def ffn_footprint(ctx: BlockContext, batch: int, tokens: int) -> Footprint:
    spec = ffn_spec(ctx.layer.ffn)
    count = spec.footprint or ffn_spec("dense").footprint
    assert count is not None
    return count(ctx, batch, tokens)
