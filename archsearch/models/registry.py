"""Layer registry: every attention and feed-forward family is built, costed and checked by name.

A family is one module file that registers a ``Family``: how to build the block from config, its
analytic MACs and parameter count (so costs never need a model), and its own validity checks.
The model code and the cost code only ever look families up here, as timm's layer registry does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from archsearch.config import ArchConfig, LayerConfig


@dataclass(frozen=True)
class BlockContext:
    """What a family needs to know about where its block sits."""

    layer: LayerConfig
    arch: ArchConfig
    causal: bool  # decoder self-attention: never look ahead
    encoder: bool = False  # part of a seq2seq encoder stack

    @property
    def d_model(self) -> int:
        return self.arch.d_model


@dataclass(frozen=True)
class Family:
    """One attention or feed-forward family.

    ``macs(ctx, tokens, extra_keys)`` counts multiply-adds for one sequence of ``tokens`` queries
    attending to ``extra_keys`` more keys (recurrent memory) -- the convention FlopCounterMode
    uses for the built module, halved. ``params(ctx)`` is the exact parameter count.
    """

    name: str
    build: Callable[[BlockContext], nn.Module]
    macs: Callable[[BlockContext, int, int], int]
    params: Callable[[BlockContext], int]
    validate: Callable[[BlockContext], None] = lambda ctx: None
    supports_memory: bool = False
    # Width of one attention head, which rotary positions need to be even.
    head_width: Callable[[BlockContext], int] = lambda ctx: (
        ctx.layer.qkv_dim(ctx.d_model) // ctx.layer.heads
    )


ATTENTION: dict[str, Family] = {}
FFN: dict[str, Family] = {}


def register(table: dict[str, Family], family: Family) -> Family:
    table[family.name] = family
    return family


def attention_family(name: str) -> Family:
    _load_families()
    if name not in ATTENTION:
        raise NotImplementedError(f"attention '{name}' has no implementation registered")
    return ATTENTION[name]


def ffn_family(name: str) -> Family:
    _load_families()
    if name not in FFN:
        raise NotImplementedError(f"ffn '{name}' has no implementation registered")
    return FFN[name]


def _load_families() -> None:
    """Import the family packages once; each module registers itself on import."""
    from archsearch.models import attention, ffn  # noqa: F401
