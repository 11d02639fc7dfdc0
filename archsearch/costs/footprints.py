"""Per-family activation footprints: the tensors each block creates, counted from shapes.

For every attention and feed-forward family this module answers three questions about one
layer, in bytes, for ``batch`` sequences of ``tokens`` queries (``keys`` = tokens plus recurrent
memory):

- ``saved``: what autograd keeps for the backward pass (training), the module's input included;
- ``peak``: the most bytes the module holds at once in an inference forward, its output
  included, on top of its input (which the block holds);
- ``cache``: what an incremental decoder keeps per layer to generate the next token (a KV cache,
  or a running state for linear attention).

The counts follow the modules' code operator by operator (what PyTorch allocates, views
excluded, float32) and are checked against ``archsearch.costs.tracker`` in the tests; the
comments name the tensors. A family without an entry here falls back to full attention's (or
the dense FFN's) footprint, and ``memory.approximated`` names it in every estimate, so a new
family is never mis-counted silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from archsearch.models.registry import BlockContext

F32, I64, BOOL = 4, 8, 1


@dataclass(frozen=True)
class Footprint:
    """Bytes of one module: kept for backward, inference peak, and generation cache."""

    saved: int
    peak: int
    cache: int = 0
    transient: int = 0  # training forward: temporaries beyond ``saved`` (large ones only)


@dataclass(frozen=True)
class Dims:
    """Shapes of one attention call: ``tokens`` queries over ``keys`` keys (memory first)."""

    batch: int
    tokens: int
    keys: int
    d_model: int
    width: int  # attention width (q/k/v)
    heads: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def half(self) -> int:
        return self.head_dim // 2

    def bt(self, channels: int) -> int:
        """Bytes of a float tensor [batch, tokens, channels]."""
        return self.batch * self.tokens * channels * F32

    def bk(self, channels: int) -> int:
        """Bytes of a float tensor [batch, keys, channels]."""
        return self.batch * self.keys * channels * F32


def _rotary_tables(positions: int, half: int) -> int:
    """cos and sin tables [positions, half] kept by rotary's multiplications."""
    return 2 * positions * half * F32


def projections_peak(dims: Dims) -> int:
    """Peak inside ``Projections.qkv``: while k is rotated, q, k, v, the rotated q and rotary's two
    half-width products of k are alive (plus ``cat(memory, x)`` when there is memory)."""
    source = dims.bk(dims.d_model) if dims.keys > dims.tokens else 0
    rotary = 2 * dims.bk(dims.width) + 3 * dims.keys * dims.half * F32
    return source + 2 * dims.bt(dims.width) + 2 * dims.bk(dims.width) + rotary


def projections_saved(dims: Dims) -> int:
    """The block's normalised input (saved by q), ``cat(memory, x)`` (by k, v), rotary tables,
    the rotated q and k and v."""
    source = dims.bk(dims.d_model) if dims.keys > dims.tokens else 0
    tables = _rotary_tables(dims.tokens, dims.half) + _rotary_tables(dims.keys, dims.half)
    rotated = dims.bt(dims.width) + 2 * dims.bk(dims.width)
    return dims.bt(dims.d_model) + source + tables + rotated


def _sdpa(dims: Dims, rows: int, mask_cells: int) -> tuple[int, int]:
    """(output, log-sum-exp) bytes of SDPA over ``rows`` query rows per head, and a float mask."""
    lse = dims.batch * dims.heads * rows * F32
    return dims.batch * dims.heads * rows * dims.head_dim * F32, lse + mask_cells * F32


# ---- attention families ------------------------------------------------------------------------


def _dense_attention(dims: Dims, mask_cells: int, cache: int) -> Footprint:
    """One fused SDPA over every key (``mask_cells`` of float mask when masked explicitly)."""
    out, extra = _sdpa(dims, dims.tokens, mask_cells)
    merged = dims.bt(dims.width)
    saved = projections_saved(dims) + out + extra + merged
    after = dims.bt(dims.width) + 2 * dims.bk(dims.width)  # rotated q, k and v
    peak = max(projections_peak(dims), after + out + extra + merged + dims.bt(dims.d_model))
    return Footprint(saved, peak, cache)


def full_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """Fused SDPA: q, k, v, output and log-sum-exp kept; the score matrix is never formed.

    A causal layer with memory passes a [T, M+T] boolean mask, which SDPA turns into a float one.
    """
    mask = dims.tokens * dims.keys if dims.keys > dims.tokens else 0
    return _dense_attention(dims, mask, 2 * dims.bk(dims.width))


def local_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """Chunked windows: padded query chunks, neighbour key/value blocks, a float chunk mask.

    When ``plan_local`` picks the dense form, this is full attention with a [T, M+T] mask.
    """
    from archsearch.models.attention.local import plan_local

    layer = ctx.layer
    memory = dims.keys - dims.tokens
    plan = plan_local(
        dims.tokens, memory, layer.window, layer.dilation, ctx.causal, layer.global_tokens
    )
    reach = min(dims.keys, layer.window * layer.dilation + 1)
    cache = 2 * dims.batch * reach * dims.width * F32
    if not plan.chunked:
        return _dense_attention(dims, dims.tokens * dims.keys, cache)
    bh, hd, g = dims.batch * dims.heads, dims.head_dim, plan.global_tokens
    rows = plan.dilation * plan.chunks * plan.window  # padded query rows per head
    queries = bh * rows * hd * F32
    blocks = bh * plan.dilation * plan.chunks * (plan.span + g) * hd * F32
    neighbours = plan.span // plan.window
    parts = bh * plan.dilation * (plan.chunks + neighbours - 1) * plan.window * hd * F32
    mask = plan.dilation * plan.chunks * plan.window * (plan.span + g) * F32
    lse = bh * rows * F32
    merged = dims.bt(dims.width)
    rotated = dims.bt(dims.width) + 2 * dims.bk(dims.width)
    saved = projections_saved(dims) - rotated + queries + 2 * blocks + queries + lse + mask
    saved += merged
    if g:  # the global rows attend over every key: q, k, v stay saved
        saved += rotated + 2 * bh * g * hd * F32
    peak = max(
        projections_peak(dims),
        rotated + 2 * queries,  # padded queries and their chunked copy
        rotated + queries + 2 * blocks + parts,  # value blocks being built
        rotated + queries + 2 * blocks + queries + lse + mask,  # SDPA output
        rotated + 3 * queries,  # output, its un-chunked copy
        rotated + queries + merged + dims.bt(dims.d_model),
    )
    return Footprint(saved, peak, cache)


def linformer_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """Encoders: k and v compressed to ``linformer_k`` slots. Causal: blockwise, with prefix
    summaries of completed blocks (their expanded projections and key copies kept for backward).
    """
    slots = ctx.layer.linformer_k
    bh, hd, t = dims.batch * dims.heads, dims.head_dim, dims.tokens
    rotated = 3 * dims.bt(dims.width)
    merged = dims.bt(dims.width)
    if not ctx.causal or t <= slots:
        if ctx.causal:  # one block: plain causal attention
            return full_footprint(ctx, dims)
        compressed = 2 * bh * slots * hd * F32
        out, extra = _sdpa(dims, t, 0)
        saved = projections_saved(dims) + compressed + out + extra + merged
        peak = max(projections_peak(dims), rotated + compressed + out + extra + merged)
        return Footprint(saved, peak + dims.bt(dims.d_model), 2 * bh * slots * hd * F32)
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
    return Footprint(saved, peak, cache)


def performer_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """FAVOR+: feature maps [B, H, T, m] of q and k, values with a ones column, and, causal, the
    chunked products and per-chunk states of ``_causal_favor``."""
    from archsearch.models.attention.performer import causal_chunk

    m = ctx.layer.performer_features
    bh, hd, t = dims.batch * dims.heads, dims.head_dim, dims.tokens
    e = hd + 1
    feats = bh * t * m * F32
    values = bh * t * e * F32
    rotated = 3 * dims.bt(dims.width)
    scaled = dims.bt(dims.width)
    expanded = bh * hd * m * F32  # the feature matrix broadcast over the batch for matmul
    small = 4 * bh * t * F32  # maxima, normaliser, clamp
    tables = _rotary_tables(t, dims.half) * 2
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
        return Footprint(saved, peak, bh * m * e * F32)
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
    return Footprint(saved, peak, bh * m * e * F32)


def lsh_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """Shared-QK hashing: q, its normalised copy (the keys) and v; per round, a sorted copy of
    each, previous-plus-own chunk windows of keys and values, float scores and boolean masks,
    and int64 sort orders, positions and buckets."""
    from archsearch.models.attention.lsh import bucket_count

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
    saved = dims.bt(dims.d_model) + _rotary_tables(t, dims.half) + rotations + 3 * vec + norms
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
    return Footprint(saved, peak, 2 * dims.bk(dims.width))


def lsra_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    """Attention on the first channels (full, fused), convolution branch on the rest."""
    from archsearch.models.attention.lsra import branch_widths

    layer = ctx.layer
    a, c = branch_widths(ctx)
    branch = Dims(dims.batch, dims.tokens, dims.tokens, dims.d_model, a, layer.heads)
    out, extra = _sdpa(branch, dims.tokens, 0)
    merged = branch.bt(a)
    attn_saved = projections_saved(branch) - branch.bt(dims.d_model) + out + extra + merged
    attn_peak = max(
        projections_peak(branch), 3 * branch.bt(a) + out + extra + merged + branch.bt(a)
    )
    saved = dims.bt(dims.d_model) + attn_saved
    cache = 2 * branch.bk(a)
    if not c:
        return Footprint(saved, attn_peak, cache)
    k, groups = layer.conv_kernel, layer.heads
    glu_in = dims.bt(2 * c)
    glu_out = dims.bt(c)
    padded = dims.batch * (dims.tokens + k - 1) * c * F32
    if layer.conv_type == "lightweight":
        conv_saved = padded + c * k * F32
        conv_peak = glu_out + padded + dims.bt(c)
    else:
        kernels = dims.batch * dims.tokens * groups * k * F32
        # unfolded windows are a view of the padded input, but flattening them for the batched
        # matmul copies them once the batch has more than one sequence
        windows = dims.bt(c) * k if dims.batch > 1 else 0
        conv_saved = glu_out + kernels + (windows or padded)
        conv_peak = glu_out + max(2 * kernels, kernels + padded + windows + dims.bt(c))
    saved += glu_in + conv_saved + dims.bt(c)
    conv = max(glu_in + glu_out, conv_peak, dims.bt(c) + dims.bt(c))
    branch_locals = 5 * branch.bt(a) + extra  # q, k, v, SDPA output and the branch output
    peak = max(attn_peak, branch_locals + conv, branch_locals + dims.bt(c) + dims.bt(dims.d_model))
    cache += dims.batch * (k - 1) * c * F32
    return Footprint(saved, peak, cache)


# ---- feed-forward families ---------------------------------------------------------------------


def _dense_parts(d: int, hidden: int, tokens: int, activation: str) -> Footprint:
    """Linear -> activation -> Linear over ``tokens`` rows: input, pre-activation (GELU only:
    ReLU keeps its output, which the second Linear keeps too) and activation kept."""
    pre = tokens * hidden * F32 if activation == "gelu" else 0
    saved = tokens * d * F32 + pre + tokens * hidden * F32
    peak = max(2 * tokens * hidden * F32, tokens * hidden * F32 + tokens * d * F32)
    return Footprint(saved, peak)


def dense_footprint(ctx: BlockContext, batch: int, tokens: int) -> Footprint:
    d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
    return _dense_parts(d, hidden, batch * tokens, ctx.layer.activation)


def switch_footprint(ctx: BlockContext, batch: int, tokens: int) -> Footprint:
    """Router probabilities, then each expert's dense FFN over its tokens, their outputs
    concatenated and gated. Routing is data-dependent: this is the most it can take, with
    every token reaching an expert (up to ``capacity * experts``) and one expert taking a full
    ``capacity``; tokens a router drops only lower the measured figure."""
    from archsearch.models.ffn.moe import expert_capacity

    layer = ctx.layer
    d, hidden, e = ctx.d_model, layer.hidden_dim(ctx.d_model), layer.experts
    rows = batch * tokens
    capacity = expert_capacity(rows, e, layer.capacity_factor)
    run = min(rows, capacity * e)  # tokens that reach an expert, at most
    routing = rows * e * F32 * 2 + rows * (F32 + 3 * I64) + rows * e * I64 * 2
    experts = _dense_parts(d, hidden, run, layer.activation)
    busiest = _dense_parts(d, hidden, min(run, capacity), layer.activation)  # one expert
    outputs = run * d * F32
    saved = rows * d * F32 + rows * e * F32 + rows * F32 + experts.saved + 2 * outputs
    saved += run * (I64 + F32)
    peak = max(
        routing,
        # earlier experts' outputs and this expert's inputs (at most every routed token), and
        # this expert's FFN (at most ``capacity`` tokens)
        routing // 2 + outputs + busiest.peak,
        routing // 2 + 3 * outputs + rows * d * F32,
    )
    return Footprint(saved, peak)


def sparse_footprint(ctx: BlockContext, batch: int, tokens: int) -> Footprint:
    """Controller logits over every hidden unit, the picked unit per block (int64), the
    sparse projections over ``hidden / sparsity`` units, and (training) Gumbel noise and the
    straight-through gate."""
    from archsearch.models.ffn.sparse import CHUNK_ELEMENTS, controller_rank

    layer = ctx.layer
    d, hidden, s = ctx.d_model, layer.hidden_dim(ctx.d_model), layer.sparsity
    rows = batch * tokens
    if s == 1:
        return _dense_parts(d, hidden, rows, layer.activation)
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
    return Footprint(saved, peak, transient=transient)


AttentionFootprint = Callable[[BlockContext, Dims], Footprint]
FFNFootprint = Callable[[BlockContext, int, int], Footprint]

ATTENTION_FOOTPRINTS: dict[str, AttentionFootprint] = {
    "full": full_footprint,
    "local": local_footprint,
    "linformer": linformer_footprint,
    "performer": performer_footprint,
    "lsh": lsh_footprint,
    "lsra": lsra_footprint,
}
FFN_FOOTPRINTS: dict[str, FFNFootprint] = {
    "dense": dense_footprint,
    "switch_moe": switch_footprint,
    "sparse": sparse_footprint,
}


def attention_footprint(ctx: BlockContext, dims: Dims) -> Footprint:
    return ATTENTION_FOOTPRINTS.get(ctx.layer.attention, full_footprint)(ctx, dims)


def ffn_footprint(ctx: BlockContext, batch: int, tokens: int) -> Footprint:
    return FFN_FOOTPRINTS.get(ctx.layer.ffn, dense_footprint)(ctx, batch, tokens)
