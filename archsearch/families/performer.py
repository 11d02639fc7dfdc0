"""Performer attention (FAVOR+): softmax attention through positive orthogonal random features.

Linear in the sequence length: non-causal as phi(Q) (phi(K)^T [V, 1]); causal by chunks of
``causal_chunk`` tokens, an exact masked product within a chunk and a running state across
chunks. The random features are a buffer, not parameters. See
``archsearch.models.attention.performer``.
"""

from __future__ import annotations

import math

from archsearch.families.activations import (
    F32,
    ActivationBytes,
    Dims,
    projections_peak,
    rotary_tables,
)
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.projections import (
    projection_int8,
    projection_macs,
    projection_params,
)
from archsearch.families.settings import Setting, integer

CHUNK_CANDIDATES = (16, 32, 64, 128)  # causal chunk lengths tried (the sequence length is too)


def causal_chunk(tokens: int, features: int, head_dim: int) -> int:
    """The chunk length (from CHUNK_CANDIDATES, or the whole sequence) with the fewest MACs."""
    candidates = sorted({c for c in CHUNK_CANDIDATES if c < tokens} | {tokens})
    return min(candidates, key=lambda c: (causal_macs(tokens, c, features, head_dim + 1), -c))


def causal_macs(tokens: int, chunk: int, features: int, width: int) -> int:
    """Per head, ``width`` = head_dim + 1 (values plus the normaliser column)."""
    n = math.ceil(tokens / chunk)
    macs = n * chunk * chunk * (features + width)  # phi(Q) phi(K)^T and its product with [V, 1]
    if n > 1:
        macs += n * chunk * features * width  # per-chunk states phi(K_c)^T [V_c, 1]
        macs += n * n * features * width  # mixing states across chunks (masked [n, n] matmul)
        macs += n * chunk * features * width  # phi(Q_c) times the carried state
    return macs


def performer_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections plus, per head (d = head width, m = features, e = d + 1):

    feature maps of q and k: 2 T m d; non-causal: 2 T m e; causal, chunk c and n = ceil(T/c)
    chunks: n c^2 (m + e), plus when n > 1: 2 n c m e + n^2 m e. Exponentials, norms, the
    running max and masks are element-wise and not counted. ``extra_keys`` is always 0
    (no memory support).
    """
    m = ctx.layer.performer_features
    heads = ctx.layer.heads
    head_dim = ctx.layer.qkv_dim(ctx.d_model) // heads
    core = 2 * tokens * m * head_dim
    if ctx.causal:
        core += causal_macs(tokens, causal_chunk(tokens, m, head_dim), m, head_dim + 1)
    else:
        core += 2 * tokens * m * (head_dim + 1)
    return projection_macs(ctx, tokens, 0) + heads * core


def performer_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """FAVOR+: feature maps [B, H, T, m] of q and k, values with a ones column, and, causal, the
    chunked products and per-chunk states of ``_causal_favor``."""
    m = ctx.layer.performer_features
    bh, hd, t = dims.batch * dims.heads, dims.head_dim, dims.tokens
    e = hd + 1
    feats = bh * t * m * F32
    values = bh * t * e * F32
    rotated = 3 * dims.bt(dims.width)
    scaled = dims.bt(dims.width)
    expanded = bh * hd * m * F32  # the feature matrix broadcast over the batch for matmul
    small = 4 * bh * t * F32  # maxima, normaliser, clamp
    tables = rotary_tables(t, dims.half) * 2
    logs = max(scaled + feats + scaled + feats, 2 * feats)  # while one feature map is computed
    if not ctx.causal:
        phi_k = feats
        kv = bh * m * e * F32
        out = values
        saved = dims.bt(dims.d_model) + tables + 2 * scaled + 2 * expanded + 2 * feats + values
        saved += kv + out + small + dims.bt(dims.width)
        peak = max(
            projections_peak(dims),
            rotated + feats + logs + expanded,
            rotated + 2 * feats + 2 * feats + values + phi_k + kv + out,
            rotated + out + dims.bt(dims.width) + dims.bt(dims.d_model),
        )
        return ActivationBytes(saved, peak, bh * m * e * F32)
    c = causal_chunk(t, m, hd)
    n = math.ceil(t / c)
    pad = n * c - t
    padded = (2 * feats + values) * (n * c) // t if pad else 0
    square = bh * n * c * c * F32
    chunk_out = bh * n * c * e * F32
    state = bh * n * m * e * F32 if n > 1 else 0
    weighted = bh * n * c * m * F32 if n > 1 else 0
    saved = dims.bt(dims.d_model) + tables + 2 * scaled + 2 * expanded + 2 * feats + values
    saved += padded + 2 * square + chunk_out + small + dims.bt(dims.width)
    if n > 1:
        saved += weighted + state + bh * n * n * F32
    live = rotated + 4 * feats + values + padded  # logs and features of q and k, values
    peak = max(
        projections_peak(dims),
        rotated + feats + logs + expanded,
        live + 3 * square,
        live + square + chunk_out + weighted + state,
        live + square + 2 * state + 3 * chunk_out if n > 1 else 0,
        rotated + chunk_out + dims.bt(dims.width) + dims.bt(dims.d_model),
    )
    return ActivationBytes(saved, peak, bh * m * e * F32)


def performer_buffers(ctx: BlockContext) -> int:
    """The random features: [heads, features, head_dim] float32."""
    layer = ctx.layer
    head_dim = layer.qkv_dim(ctx.d_model) // layer.heads
    return layer.heads * layer.performer_features * head_dim * F32


SPEC = FamilySpec(
    name="performer",
    kind="attention",
    implementation="archsearch.models.attention.performer:PerformerAttention",
    macs=performer_macs,
    params=projection_params,
    int8_weights=projection_int8,
    bias=True,
    activations=performer_activations,
    settings=(Setting("performer_features", "int", 64, integer(1), "random features per head"),),
    buffers=performer_buffers,
    probe_cuts_query_key=True,
    examples={
        "tests": {"performer_features": 16},
        "calibration": {"performer_features": 64},
        "benchmark": {"performer_features": 32},
        "separation": {"performer_features": 32},
        "scaling": {"performer_features": 64},
    },
)
