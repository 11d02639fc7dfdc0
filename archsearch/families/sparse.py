"""Scaling Transformer's sparse feed-forward layer (Jaszczur et al., 2021).

Hidden units in blocks of ``sparsity``; a low-rank controller picks one unit per block for each
token, and only the picked units are computed. See ``archsearch.models.ffn.sparse``.
"""

from __future__ import annotations

from archsearch.errors import InputError
from archsearch.families.activations import F32, I64, ActivationBytes, dense_ffn_parts
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.dense import dense_int8, dense_macs, dense_params
from archsearch.families.settings import Setting, integer

# Gathered weight rows per chunk of tokens (floats): small enough to stay in cache, which makes
# the gather + batched matmul several times faster than one batch-sized gather.
CHUNK_ELEMENTS = 1 << 20


def controller_rank(d_model: int) -> int:
    """Width of the controller's low-rank bottleneck."""
    return max(1, d_model // 16)


def validate_sparse(ctx: BlockContext) -> None:
    hidden = ctx.layer.hidden_dim(ctx.d_model)
    if hidden % ctx.layer.sparsity:
        raise InputError(
            f"sparse FFN needs the hidden width ({hidden}) divisible by sparsity "
            f"({ctx.layer.sparsity})",
            key="sparsity",
        )


def controller_params(ctx: BlockContext) -> int:
    if ctx.layer.sparsity == 1:
        return 0  # one unit per block: nothing to choose, no controller
    rank = controller_rank(ctx.d_model)
    return ctx.d_model * rank + rank * ctx.layer.hidden_dim(ctx.d_model)


def sparse_params(ctx: BlockContext) -> int:
    """The dense FFN's weights plus the controller (none at sparsity 1)."""
    return dense_params(ctx) + controller_params(ctx)


def sparse_int8(ctx: BlockContext) -> tuple[int, int]:
    """At sparsity 1, both dense projections. Above it, the FFN reads ``up`` and ``down``'s
    weights by picked units (they stay float) and only the controller's two linears are int8."""
    if ctx.layer.sparsity == 1:
        return dense_int8(ctx)
    return controller_params(ctx), 2


def sparse_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Controller for every token plus both projections over hidden / sparsity units."""
    projections = dense_macs(ctx, tokens, extra_keys) // ctx.layer.sparsity
    return tokens * controller_params(ctx) + projections


def sparse_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    """Controller logits over every hidden unit, the picked unit per block (int64), the
    sparse projections over ``hidden / sparsity`` units, and (training) Gumbel noise and the
    straight-through gate."""
    layer = ctx.layer
    d, hidden, s = ctx.d_model, layer.hidden_dim(ctx.d_model), layer.sparsity
    rows = batch * tokens
    if s == 1:
        return dense_ffn_parts(d, hidden, rows, layer.activation)
    blocks = hidden // s
    rank = controller_rank(d)
    logits = rows * hidden * F32
    units = rows * blocks * I64
    picked = rows * blocks * F32
    up_step = max(1, CHUNK_ELEMENTS // (blocks * d))
    buffer = min(up_step, rows) * blocks * d * F32
    saved = rows * d * F32 + rows * rank * F32 + 2 * units + logits + 5 * picked
    transient = hidden * d * F32 + buffer + rows * d * F32  # the down projection's buffers
    peak = max(
        rows * rank * F32 + 2 * logits,
        logits + 3 * units + picked,
        units + picked + buffer + picked,
        units + picked + hidden * d * F32 + buffer + rows * d * F32,
    )
    return ActivationBytes(saved, peak, transient=transient)


SPEC = FamilySpec(
    name="sparse",
    kind="ffn",
    implementation="archsearch.models.ffn.sparse:SparseFFN",
    macs=sparse_macs,
    params=sparse_params,
    int8_weights=sparse_int8,
    activations=sparse_activations,
    settings=(
        Setting(
            "sparsity",
            "int",
            1,
            integer(1),
            "hidden units per block, one active per block (Scaling Transformer)",
        ),
    ),
    validate=validate_sparse,
    examples={
        "tests": {"sparsity": 4},
        "calibration": {"sparsity": 4},
        "benchmark": {"sparsity": 4},
    },
)
