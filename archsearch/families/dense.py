"""Dense position-wise feed-forward: Linear -> activation -> Linear."""

from __future__ import annotations

from archsearch.families.activations import ActivationBytes, dense_ffn_parts
from archsearch.families.base import BlockContext, FamilySpec


def dense_params(ctx: BlockContext) -> int:
    d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
    return 2 * d * hidden + (hidden + d if ctx.arch.bias else 0)


def dense_int8(ctx: BlockContext) -> tuple[int, int]:
    """Both projections' weights, stored as int8 by ``compress`` (biases stay float)."""
    return 2 * ctx.d_model * ctx.layer.hidden_dim(ctx.d_model), 2


def dense_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Two matrix products per token (biases add no MACs, as FlopCounterMode counts them)."""
    return tokens * 2 * ctx.d_model * ctx.layer.hidden_dim(ctx.d_model)


def dense_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
    return dense_ffn_parts(d, hidden, batch * tokens, ctx.layer.activation)


SPEC = FamilySpec(
    name="dense",
    kind="ffn",
    implementation="archsearch.models.ffn.dense:DenseFFN",
    macs=dense_macs,
    params=dense_params,
    int8_weights=dense_int8,
    activations=dense_activations,
    bias=True,
    examples={"tests": {}},
)
