"""Sliding-window (Longformer-style) local attention, optionally dilated, with global tokens.

A query at absolute position p sees key j when ``d = p - j`` is a multiple of ``dilation`` and
``0 <= d <= window * dilation`` (causal) or ``|d| <= window * dilation`` (encoders). In encoders
the first ``global_tokens`` positions see every key and are seen by every query. Recurrent memory
keys sit at positions before the segment and fall under the same window.

Cost is O(T * window), not O(T^2): positions are first split by ``p mod dilation`` into
``dilation`` interleaved groups (inside a group the dilated window is a plain window of
``window`` neighbours), each group is cut into chunks of ``window`` queries, and every chunk
attends, masked, to its own chunk and the previous one (and the next, in encoders) in one
batched ``scaled_dot_product_attention``. When that computes more score entries than one masked
dense attention over the whole sequence (short sequences), the dense form runs instead; both give
the same function and ``plan_local`` decides for the module and the MAC count alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.errors import InputError
from archsearch.models.attention.common import (
    Projections,
    merge_heads,
    projection_macs,
    projection_params,
)
from archsearch.models.registry import ATTENTION, BlockContext, Family, register


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


def _visible(q_pos: torch.Tensor, k_pos: torch.Tensor, plan: LocalPlan) -> torch.Tensor:
    """The window rule (global tokens aside) for broadcastable absolute positions."""
    d = q_pos - k_pos
    reach = plan.window * plan.dilation
    inside = (d >= 0) & (d <= reach) if plan.causal else d.abs() <= reach
    return inside & (d % plan.dilation == 0)


@lru_cache(maxsize=128)
def _dense_mask(plan: LocalPlan, device: torch.device) -> torch.Tensor:
    """[1, 1, T, M+T]: the window rule, plus rows and columns of the global tokens."""
    q_pos = torch.arange(plan.memory, plan.keys, device=device)[:, None]
    k_pos = torch.arange(plan.keys, device=device)[None, :]
    g = plan.global_tokens
    mask = _visible(q_pos, k_pos, plan) | (k_pos < g) | (q_pos < plan.memory + g)
    return mask[None, None]


@lru_cache(maxsize=128)
def _chunk_mask(plan: LocalPlan, device: torch.device) -> torch.Tensor:
    """[1, groups * chunks, window, span + g] for the chunked layout of ``_chunked``.

    Padding keys are hidden. Padding query rows (output dropped) need no care: padding is shorter
    than a chunk, so each still has a real key within its window and no row is fully hidden.
    Local keys among the global tokens are hidden: the global block in front already holds them.
    """
    w, dil, n = plan.window, plan.dilation, plan.chunks
    group = torch.arange(dil, device=device)[:, None, None, None]
    chunk = torch.arange(n, device=device)[None, :, None, None]
    row = torch.arange(w, device=device)[None, None, :, None]
    col = torch.arange(plan.span, device=device)[None, None, None, :]
    q_sub = plan.sub_memory + chunk * w + row
    k_sub = plan.sub_memory - w + chunk * w + col
    q_pos = q_sub * dil + group - plan.front  # absolute positions (may fall in padding)
    k_pos = k_sub * dil + group - plan.front
    real_key = (k_pos >= 0) & (k_pos < plan.keys)
    local = _visible(q_pos, k_pos, plan) & real_key & (k_pos >= plan.global_tokens)
    if plan.global_tokens:
        shape = (*local.shape[:-1], plan.global_tokens)
        local = torch.cat((torch.ones(shape, dtype=torch.bool, device=device), local), dim=-1)
    return local.reshape(1, dil * n, w, -1)  # 4-D: a 3-D mask sends CPU SDPA to its math path


def _chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: LocalPlan) -> torch.Tensor:
    """Grouped, chunked window attention; q [B,H,T,d], k/v [B,H,M+T,d] -> [B,H,T,d].

    One pad per tensor lays positions out as [chunk, row, group]; key blocks are the
    concatenation of neighbouring chunks (no overlapping views, whose bmm and backward are slow).
    """
    b, h, t, d = q.shape
    dil, w, n, g = plan.dilation, plan.window, plan.chunks, plan.global_tokens

    def chunks(x: torch.Tensor, front: int, count: int) -> torch.Tensor:
        """Pad (or crop, when negative) to ``count`` chunks -> [B,H,dil,count,w,d]."""
        x = F.pad(x, (0, 0, front, count * w * dil - front - x.shape[2]))
        return x.view(b, h, count, w, dil, d).permute(0, 1, 4, 2, 3, 5)

    queries = chunks(q, 0, n).reshape(b * h, dil * n, w, d)
    # key chunk 0 starts `window` sub-positions before the first query
    front = plan.front + dil * (w - plan.sub_memory)
    neighbours = plan.span // w  # 2 causal (previous, own), 3 encoder (and next)

    def blocks(x: torch.Tensor) -> torch.Tensor:
        parts = chunks(x, front, n + neighbours - 1)
        pieces = [parts[:, :, :, i : i + n] for i in range(neighbours)]
        if g:  # every chunk also sees the global keys, as one block in front of its own
            pieces.insert(0, x[:, :, None, None, :g].expand(b, h, dil, n, g, d))
        return torch.cat(pieces, dim=4).view(b * h, dil * n, -1, d)

    y = F.scaled_dot_product_attention(
        queries, blocks(k), blocks(v), attn_mask=_chunk_mask(plan, q.device)
    )
    y = y.view(b, h, dil, n, w, d).permute(0, 1, 3, 4, 2, 5).reshape(b, h, -1, d)[:, :, :t]
    if g:
        y = torch.cat((F.scaled_dot_product_attention(q[:, :, :g], k, v), y[:, :, g:]), dim=2)
    return y


def local_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    window: int,
    dilation: int = 1,
    causal: bool = True,
    global_tokens: int = 0,
    chunked: bool | None = None,
) -> torch.Tensor:
    """Window attention of q [B,H,T,d] over k, v [B,H,M+T,d] (the first M keys are memory).

    ``chunked`` forces a layout (tests compare the two); None lets ``plan_local`` choose.
    """
    tokens, keys = q.shape[-2], k.shape[-2]
    plan = plan_local(tokens, keys - tokens, window, dilation, causal, global_tokens)
    if chunked is not None:
        plan = replace(plan, chunked=chunked)
    if plan.chunked:
        return _chunked(q, k, v, plan)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=_dense_mask(plan, q.device))


class LocalAttention(nn.Module):
    """Projections around ``local_attention``; memory keys precede the segment."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        layer = ctx.layer
        self.window, self.dilation = layer.window, layer.dilation
        self.global_tokens = layer.global_tokens
        self.causal = ctx.causal
        self.proj = Projections(ctx.d_model, layer.qkv_dim(ctx.d_model), layer.heads)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.proj.qkv(x, memory)
        y = local_attention(
            q,
            k,
            v,
            window=self.window,
            dilation=self.dilation,
            causal=self.causal,
            global_tokens=self.global_tokens,
        )
        return self.proj.out(merge_heads(y))


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


def validate_local(ctx: BlockContext) -> None:
    """Global tokens see the whole sequence, the future included: encoders only."""
    if ctx.causal and ctx.layer.global_tokens > 0:
        raise InputError(
            "global tokens attend to every position, future ones included; "
            "use global_tokens only in encoder layers (causal layers need 0)",
            key="global_tokens",
        )


register(
    ATTENTION,
    Family(
        name="local",
        build=LocalAttention,
        macs=local_macs,
        params=projection_params,
        validate=validate_local,
        supports_memory=True,
    ),
)
