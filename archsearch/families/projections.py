"""Costs of the query/key/value/output projections most attention families share."""

from __future__ import annotations

from archsearch.families.base import BlockContext


def projection_params(ctx: BlockContext) -> int:
    """Parameters of the four projections (with their biases when the model has them)."""
    d, width = ctx.d_model, ctx.layer.qkv_dim(ctx.d_model)
    biases = 3 * width + d if ctx.arch.bias else 0
    return 4 * d * width + biases


def projection_int8(ctx: BlockContext) -> tuple[int, int]:
    """The four projections' weights, stored as int8 by ``compress`` (biases stay float)."""
    return 4 * ctx.d_model * ctx.layer.qkv_dim(ctx.d_model), 4


def projection_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """q and output over the queries, k and v over memory + queries (biases add no MACs)."""
    width = ctx.d_model * ctx.layer.qkv_dim(ctx.d_model)
    return 2 * tokens * width + 2 * (tokens + extra_keys) * width
