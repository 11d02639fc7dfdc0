"""Linformer attention: keys and values compressed along the sequence axis to ``linformer_k`` slots.

Encoders attend to the k slots ``E K`` / ``F V``; causal stacks use a blockwise causal form
(blocks of k tokens, each over its own block exactly and the prefix-summed summaries of the
completed blocks before it). See ``archsearch.models.attention.linformer``.
"""

from __future__ import annotations

import math

from archsearch.families.activations import (
    BOOL,
    F32,
    ActivationBytes,
    Dims,
    projections_peak,
    projections_saved,
    sdpa,
)
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.full import full_activations
from archsearch.families.projections import (
    projection_int8,
    projection_macs,
    projection_params,
)
from archsearch.families.settings import Setting, integer


def linformer_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections, the sequence-axis compressions and the two score products, as computed.

    Encoders: ``E K`` and ``F V`` cost k*T each per attention channel, scores T*k. Causal, T <= k:
    dense causal scores T*T (the upper triangle is computed too). Causal, T > k: compressions of
    the (n-1)*k completed-block tokens, k*(n-1)*k each, and scores over n blocks of k query rows
    (padding rows included) times 2k keys (k slots + k own-block keys), n = ceil(T / k).
    """
    width = ctx.layer.qkv_dim(ctx.d_model)
    k = ctx.layer.linformer_k
    if not ctx.causal:
        compress, cells = 2 * k * tokens, tokens * k
    elif tokens <= k:
        compress, cells = 0, tokens * tokens
    else:
        n = math.ceil(tokens / k)
        compress, cells = 2 * k * (n - 1) * k, n * k * 2 * k
    return projection_macs(ctx, tokens, extra_keys) + (compress + 2 * cells) * width


def linformer_params(ctx: BlockContext) -> int:
    """The four projections plus E and F."""
    return projection_params(ctx) + 2 * ctx.layer.linformer_k * ctx.arch.max_seq_len


def linformer_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Encoders: k and v compressed to ``linformer_k`` slots. Causal: blockwise, with prefix
    summaries of completed blocks (their expanded projections and key copies kept for backward).
    """
    slots = ctx.layer.linformer_k
    bh, hd, t = dims.batch * dims.heads, dims.head_dim, dims.tokens
    rotated = 3 * dims.bt(dims.width)
    merged = dims.bt(dims.width)
    if not ctx.causal or t <= slots:
        if ctx.causal:  # one block: plain causal attention
            return full_activations(ctx, dims)
        compressed = 2 * bh * slots * hd * F32
        out, extra = sdpa(dims, t, 0)
        saved = projections_saved(dims) + compressed + out + extra + merged
        peak = max(projections_peak(dims), rotated + compressed + out + extra + merged)
        return ActivationBytes(saved, peak + dims.bt(dims.d_model), 2 * bh * slots * hd * F32)
    n = math.ceil(t / slots)
    done = (n - 1) * slots
    copies = bh * done * hd * F32 + bh * (n - 1) * slots * slots * F32  # per summary
    per_block = bh * (n - 1) * slots * hd * F32
    summary = bh * n * slots * hd * F32  # padded prefix sums
    own = bh * n * slots * hd * F32  # padded own-block keys (or values, or queries)
    block_keys = 2 * own  # summaries and own keys side by side
    mask = n * slots * 2 * slots * F32
    lse = bh * n * slots * F32
    saved = projections_saved(dims) - rotated + 2 * copies + own + 2 * block_keys + own + lse
    saved += mask + merged
    building = max(copies + per_block, 2 * per_block, per_block + summary)
    peak = max(
        projections_peak(dims),
        rotated + building,
        rotated + block_keys + building,
        rotated + 2 * block_keys + own + own + lse + mask + n * slots * 2 * slots * BOOL,
        rotated + own + merged + dims.bt(dims.d_model),
    )
    cache = 2 * bh * 2 * slots * hd * F32  # running summaries and the current block's keys
    return ActivationBytes(saved, peak, cache)


def linformer_largest(ctx: BlockContext) -> int:
    """E (or F): [linformer_k, max_seq_len]."""
    return ctx.layer.linformer_k * ctx.arch.max_seq_len


SPEC = FamilySpec(
    name="linformer",
    kind="attention",
    implementation="archsearch.models.attention.linformer:LinformerAttention",
    macs=linformer_macs,
    params=linformer_params,
    int8_weights=projection_int8,  # E and F stay float
    bias=True,
    activations=linformer_activations,
    settings=(Setting("linformer_k", "int", 64, integer(1), "projected sequence length"),),
    largest_weight=linformer_largest,
    examples={
        "tests": {"linformer_k": 16},
        "calibration": {"linformer_k": 64},
        "benchmark": {"linformer_k": 16},
        "separation": {"linformer_k": 16},
        "scaling": {"linformer_k": 128},
    },
)
