"""Reformer's LSH attention: shared query-keys hashed by random rotations, attention in chunks.

Tokens are sorted by (bucket, position) and cut into chunks of ``lsh_bucket_size``; each chunk
attends to itself and the previous one. The rotations are a buffer sized for ``max_seq_len``.
See ``archsearch.models.attention.lsh``.
"""

from __future__ import annotations

import math

from archsearch.families.activations import (
    BOOL,
    F32,
    I64,
    ActivationBytes,
    Dims,
    projections_peak,
    rotary_tables,
)
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.settings import Setting, integer

# LSH names its projections without the ``proj.`` prefix the other families use (and has no key
# projection: keys are the normalised queries).
PROJECTION_ALIASES = {f"{p}.weight": f"proj.{p}.weight" for p in ("q", "k", "v", "out")}


def bucket_count(tokens: int, bucket_size: int, max_tokens: int) -> int:
    """ceil(tokens / bucket_size) rounded up to even; 1 when one chunk holds the sequence.

    Capped at the count for ``max_tokens`` (the rotations are sized for it).
    """

    def wanted(t: int) -> int:
        if t <= bucket_size:
            return 1
        n = math.ceil(t / bucket_size)
        return n + n % 2

    return min(wanted(tokens), wanted(max_tokens))


def lsh_params(ctx: BlockContext) -> int:
    """Query (= key), value and output projections."""
    return 3 * ctx.d_model * ctx.layer.qkv_dim(ctx.d_model)


def lsh_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections 3 T D W, plus per head (d = head width, c = min(bucket_size, T),
    n = ceil(T / c) chunks, b buckets, r rounds = lsh_hashes, or 1 when b == 1):

    hashing T d r b/2 (none when b == 1); scores and weighted values 2 r n c w d with
    w = 2c keys per chunk (c when n == 1). Sorting, gathers, norms, softmax and the
    combination of rounds are not matmuls and not counted. ``extra_keys`` is always 0.
    """
    layer = ctx.layer
    width = layer.qkv_dim(ctx.d_model)
    head_dim = width // layer.heads
    buckets = bucket_count(tokens, layer.lsh_bucket_size, ctx.arch.max_seq_len)
    rounds = layer.lsh_hashes if buckets > 1 else 1
    chunk = min(layer.lsh_bucket_size, tokens)
    n = math.ceil(tokens / chunk)
    keys = 2 * chunk if n > 1 else chunk
    hashing = tokens * head_dim * rounds * (buckets // 2) if buckets > 1 else 0
    attend = 2 * rounds * n * chunk * keys * head_dim
    return 3 * tokens * ctx.d_model * width + layer.heads * (hashing + attend)


def lsh_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Shared-QK hashing: q, its normalised copy (the keys) and v; per round, a sorted copy of
    each, previous-plus-own chunk windows of keys and values, float scores and boolean masks,
    and int64 sort orders, positions and buckets."""
    layer = ctx.layer
    bh, hd, t = dims.batch * dims.heads, dims.head_dim, dims.tokens
    buckets = bucket_count(t, layer.lsh_bucket_size, ctx.arch.max_seq_len)
    rounds = layer.lsh_hashes if buckets > 1 else 1
    c = min(layer.lsh_bucket_size, t)
    n = math.ceil(t / c)
    width = 2 * c if n > 1 else c
    sorted_ = bh * rounds * n * c * hd * F32  # one sorted, padded copy of q, keys or v
    window = width // c * sorted_
    cells = bh * rounds * n * c * width
    scores = cells * F32
    index = bh * rounds * n * c * I64
    vec = dims.bt(dims.width)
    rotations = bh * hd * rounds * max(1, buckets // 2) * F32 if buckets > 1 else 0
    hashing = bh * t * rounds * buckets * F32 if buckets > 1 else 0
    norms = bh * t * F32 * (2 if rounds > 1 else 1)
    mass = bh * rounds * n * c * F32
    saved = dims.bt(dims.d_model) + rotary_tables(t, dims.half) + rotations + 3 * vec + norms
    saved += 2 * index + sorted_ + 2 * window + 2 * cells * BOOL + 2 * scores + mass + sorted_
    saved += dims.bt(dims.width)  # heads merged for the output projection
    if rounds > 1:  # gathered per-round outputs and their softmax weights
        saved += sorted_ + bh * rounds * t * F32
    live = 3 * vec + 3 * sorted_ + 8 * index  # q, keys, v; sorted copies; orders and positions
    peak = max(
        projections_peak(dims),
        2 * vec + rotations + 2 * hashing,
        live + window + sorted_ + 2 * scores,  # key window, scores and their scaled copy
        live + 2 * cells * BOOL + 2 * scores + sorted_ + window,  # value window
        live + 2 * cells * BOOL + 3 * scores,  # exp(scores - mass)
        live + 3 * sorted_ + mass + dims.bt(dims.width),  # outputs un-sorted, rounds combined
    )
    return ActivationBytes(saved, peak, 2 * dims.bk(dims.width))


def lsh_buffers(ctx: BlockContext) -> int:
    """The random rotations, sized for ``max_seq_len``: [heads, head_dim, hashes, buckets/2]."""
    layer = ctx.layer
    head_dim = layer.qkv_dim(ctx.d_model) // layer.heads
    top = ctx.arch.max_seq_len
    half = max(1, bucket_count(top, layer.lsh_bucket_size, top) // 2)
    return layer.heads * head_dim * layer.lsh_hashes * half * F32


SPEC = FamilySpec(
    name="lsh",
    kind="attention",
    implementation="archsearch.models.attention.lsh:LSHAttention",
    macs=lsh_macs,
    params=lsh_params,
    int8_weights=lambda ctx: (lsh_params(ctx), 3),  # query (= key), value, output
    activations=lsh_activations,
    settings=(
        Setting("lsh_bucket_size", "int", 32, integer(1), "tokens per hash bucket"),
        Setting("lsh_hashes", "int", 1, integer(1), "rounds of hashing"),
    ),
    buffers=lsh_buffers,
    onnx_fixed_length="its bucket count, and so its hashing, follows the sequence length",
    supernet_aliases=PROJECTION_ALIASES,
    examples={
        "tests": {"lsh_bucket_size": 8, "lsh_hashes": 2},
        "calibration": {"lsh_bucket_size": 32, "lsh_hashes": 2},
        "benchmark": {"lsh_bucket_size": 16},
        "separation": {"lsh_bucket_size": 16},
        "scaling": {"lsh_bucket_size": 64, "lsh_hashes": 1},
    },
)
