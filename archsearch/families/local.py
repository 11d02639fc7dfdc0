"""Sliding-window (Longformer-style) local attention, optionally dilated, with global tokens.

A query at absolute position p sees key j when ``d = p - j`` is a multiple of ``dilation`` and
``0 <= d <= window * dilation`` (causal) or ``|d| <= window * dilation`` (encoders); in encoders
the first ``global_tokens`` positions see and are seen by every key. ``plan_local`` decides
between the chunked layout (cost O(T * window)) and one masked dense attention, for the module
(``archsearch.models.attention.local``) and the MAC count alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from archsearch.errors import InputError
from archsearch.families.activations import (
    F32,
    ActivationBytes,
    Dims,
    dense_attention,
    projections_peak,
    projections_saved,
)
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.projections import (
    projection_int8,
    projection_macs,
    projection_params,
)
from archsearch.families.settings import Setting, integer

if TYPE_CHECKING:
    from archsearch.config import LayerConfig


@dataclass(frozen=True)
class LocalPlan:
    """How one call is laid out; its ``score_cells`` are the query-key pairs computed per head."""

    tokens: int  # T queries
    memory: int  # M keys before them
    window: int
    dilation: int
    causal: bool
    global_tokens: int  # effective: at most T
    front: int  # padding before position 0 so the segment starts on a group boundary
    back: int  # padding after the last position so the length is a multiple of dilation
    chunks: int  # query chunks per group
    chunked: bool  # False: one masked dense attention

    @property
    def keys(self) -> int:
        return self.memory + self.tokens

    @property
    def sub_memory(self) -> int:
        """Memory positions per group (after front padding)."""
        return (self.memory + self.front) // self.dilation

    @property
    def sub_tokens(self) -> int:
        """Query positions per group (after back padding)."""
        return (self.tokens + self.back) // self.dilation

    @property
    def span(self) -> int:
        """Local keys per chunk: the chunk, ``window`` before it and (encoders) after it."""
        return self.window * (2 if self.causal else 3)

    @property
    def chunked_cells(self) -> int:
        g = self.global_tokens
        local = self.dilation * self.chunks * self.window * (self.span + g)
        return local + g * self.keys

    @property
    def score_cells(self) -> int:
        return self.chunked_cells if self.chunked else self.tokens * self.keys


def plan_local(
    tokens: int, memory: int, window: int, dilation: int, causal: bool, global_tokens: int
) -> LocalPlan:
    """Choose chunked or dense for ``tokens`` queries after ``memory`` keys (fewer cells wins)."""
    front = -memory % dilation
    back = -(front + memory + tokens) % dilation
    sub_tokens = (tokens + back) // dilation
    plan = LocalPlan(
        tokens=tokens,
        memory=memory,
        window=window,
        dilation=dilation,
        causal=causal,
        global_tokens=min(global_tokens, tokens),
        front=front,
        back=back,
        chunks=math.ceil(sub_tokens / window),
        chunked=True,
    )
    if plan.chunked_cells >= tokens * plan.keys:
        plan = replace(plan, chunked=False)
    return plan


def local_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections plus Q.K^T and A.V over the score entries ``plan_local`` computes.

    Counted is what runs, masked entries included: chunked, ``dilation * chunks * window``
    query rows (padding rows too) times ``span + g`` keys, plus ``g * (M+T)`` for the global
    rows; dense, ``T * (M+T)``. Each entry costs one MAC per attention channel in each product.
    """
    layer = ctx.layer
    plan = plan_local(
        tokens, extra_keys, layer.window, layer.dilation, ctx.causal, layer.global_tokens
    )
    scores = 2 * plan.score_cells * layer.qkv_dim(ctx.d_model)
    return projection_macs(ctx, tokens, extra_keys) + scores


def local_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Chunked windows: padded query chunks, neighbour key/value blocks, a float chunk mask.

    When ``plan_local`` picks the dense form, this is full attention with a [T, M+T] mask.
    """
    layer = ctx.layer
    memory = dims.keys - dims.tokens
    plan = plan_local(
        dims.tokens, memory, layer.window, layer.dilation, ctx.causal, layer.global_tokens
    )
    reach = min(dims.keys, layer.window * layer.dilation + 1)
    cache = 2 * dims.batch * reach * dims.width * F32
    if not plan.chunked:
        return dense_attention(dims, dims.tokens * dims.keys, cache)
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
    return ActivationBytes(saved, peak, cache)


def validate_local(ctx: BlockContext) -> None:
    """Global tokens see the whole sequence, the future included: encoders only."""
    if ctx.causal and ctx.layer.global_tokens > 0:
        raise InputError(
            "global tokens attend to every position, future ones included; "
            "use global_tokens only in encoder layers (causal layers need 0)",
            key="global_tokens",
        )


def check_window(layer: LayerConfig) -> None:
    """A local layer must see at least one key back."""
    if layer.window < 1:
        raise InputError("local attention needs window >= 1", key="window")


SPEC = FamilySpec(
    name="local",
    kind="attention",
    implementation="archsearch.models.attention.local:LocalAttention",
    macs=local_macs,
    params=projection_params,
    int8_weights=projection_int8,
    bias=True,
    activations=local_activations,
    settings=(
        Setting(
            "window",
            "int",
            0,
            integer(0),
            "keys at most `window` positions back (and ahead in encoders)",
        ),
        Setting("dilation", "int", 1, integer(1), "distance between attended keys"),
        Setting(
            "global_tokens",
            "int",
            0,
            integer(0),
            "in encoders: leading tokens seen by and seeing all",
        ),
    ),
    validate=validate_local,
    check_layer=check_window,
    reads_memory=True,
    kv_cache=True,
    examples={
        "tests": {"window": 8, "dilation": 2},
        "calibration": {"window": 32},
        "benchmark": {"window": 16},
        "separation": {"window": 8},
        "scaling": {"window": 64},
    },
)
