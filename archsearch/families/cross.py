"""Costs of a seq2seq decoder's cross-attention over the encoder (always full, never causal).

Not a family one chooses: every decoder layer of a seq2seq model has it. Queries and the output
are in the decoder's width, keys and values are projected from the encoder's width, and a layer
with ``cross_layers`` = k reads the last k encoder layers' outputs joined along the sequence
(HAT's arbitrary encoder-decoder attention), so its keys and values span k x source tokens.
"""

from __future__ import annotations

from archsearch.families.base import BlockContext


def cross_keys(ctx: BlockContext, source_tokens: int) -> int:
    """Positions the cross-attention's keys and values span."""
    return ctx.layer.cross_layers * source_tokens


def cross_attention_macs(ctx: BlockContext, tokens: int, source_tokens: int) -> int:
    """q/out over target tokens, k/v over the joined encoder outputs, dense score matrix."""
    d, source_d = ctx.arch.d_model, ctx.arch.encoder_width
    width = ctx.layer.qkv_dim(d)
    keys = cross_keys(ctx, source_tokens)
    projections = 2 * tokens * d * width + 2 * keys * source_d * width
    return projections + 2 * tokens * keys * width


def cross_attention_weights(ctx: BlockContext) -> int:
    """Elements of the four projections' weight matrices (what int8 stores; no biases)."""
    d, source_d = ctx.arch.d_model, ctx.arch.encoder_width
    width = ctx.layer.qkv_dim(d)
    return 2 * d * width + 2 * source_d * width


def cross_attention_params(ctx: BlockContext) -> int:
    d = ctx.arch.d_model
    width = ctx.layer.qkv_dim(d)
    biases = 3 * width + d if ctx.arch.bias else 0
    return cross_attention_weights(ctx) + biases
