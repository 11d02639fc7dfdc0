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

from dataclasses import replace
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.local import LocalPlan, local_macs, plan_local, validate_local
from archsearch.models.attention.common import Projections, merge_heads

__all__ = [
    "LocalAttention",
    "LocalPlan",
    "local_attention",
    "local_macs",
    "plan_local",
    "validate_local",
]


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
        self.proj = Projections(
            ctx.d_model, layer.qkv_dim(ctx.d_model), layer.heads, bias=ctx.arch.bias
        )

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
