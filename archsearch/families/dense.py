"""Dense position-wise feed-forward: Linear -> activation -> Linear."""

from __future__ import annotations

from archsearch.families.activations import ActivationBytes, dense_ffn_parts
from archsearch.families.base import BlockContext, FamilySpec


def dense_params(ctx: BlockContext) -> int:
    return 2 * ctx.d_model * ctx.layer.hidden_dim(ctx.d_model)


def dense_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    return tokens * dense_params(ctx)


def dense_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
    return dense_ffn_parts(d, hidden, batch * tokens, ctx.layer.activation)


SPEC = FamilySpec(
    name="dense",
    kind="ffn",
    implementation="archsearch.models.ffn.dense:DenseFFN",
    macs=dense_macs,
    params=dense_params,
    int8_weights=lambda ctx: (dense_params(ctx), 2),
    activations=dense_activations,
    examples={"tests": {}},
)
