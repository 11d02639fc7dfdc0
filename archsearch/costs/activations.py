"""Per-family activation bytes, looked up in the family specs (torch-free).

Each family's spec (``archsearch.families``) counts its own tensors; ``families.activations``
says what ``saved``, ``peak`` and ``cache`` mean. A family whose spec counts none falls
back to full attention's (or the dense FFN's), and ``memory.approximated`` names it in every
estimate, so a new family is never mis-counted silently (the registry tests fail on it too).
"""

from __future__ import annotations

from archsearch.families import BlockContext, attention_spec, ffn_spec, specs
from archsearch.families.activations import BOOL, F32, I64, ActivationBytes, Dims

__all__ = [
    "BOOL",
    "F32",
    "I64",
    "ActivationBytes",
    "Dims",
    "attention_activations",
    "ffn_activations",
    "has_activations",
]


def has_activations(kind: str, name: str) -> bool:
    """Whether family ``name`` of ``kind`` counts its own activation bytes."""
    spec = specs(kind).get(name)
    return spec is not None and spec.activations is not None


def attention_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    spec = attention_spec(ctx.layer.attention)
    count = spec.activations or attention_spec("full").activations
    assert count is not None
    return count(ctx, dims)


def ffn_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    spec = ffn_spec(ctx.layer.ffn)
    count = spec.activations or ffn_spec("dense").activations
    assert count is not None
    return count(ctx, batch, tokens)
