"""Full softmax attention: every query sees every (earlier, when causal) key, memory included."""

from __future__ import annotations

from archsearch.families.activations import ActivationBytes, Dims, dense_attention
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.projections import (
    projection_int8,
    projection_macs,
    projection_params,
)


def full_attention_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections plus Q.K^T and A.V over the whole (dense-kernel) score matrix."""
    keys = tokens + extra_keys
    scores = 2 * tokens * keys * ctx.layer.qkv_dim(ctx.d_model)
    return projection_macs(ctx, tokens, extra_keys) + scores


def full_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Fused SDPA: q, k, v, output and log-sum-exp kept; the score matrix is never formed.

    A causal layer with memory passes a [T, M+T] boolean mask, which SDPA turns into a float one.
    """
    mask = dims.tokens * dims.keys if dims.keys > dims.tokens else 0
    return dense_attention(dims, mask, 2 * dims.bk(dims.width))


SPEC = FamilySpec(
    name="full",
    kind="attention",
    implementation="archsearch.models.attention.full:FullAttention",
    macs=full_attention_macs,
    params=projection_params,
    int8_weights=projection_int8,
    bias=True,
    activations=full_activations,
    reads_memory=True,
    kv_cache=True,
    examples={
        "tests": {},
        "calibration": {},
        "benchmark": {},
        "separation": {},
        "scaling": {},
    },
)
