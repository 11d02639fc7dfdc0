"""Full softmax attention through PyTorch's fused scaled_dot_product_attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.models.attention.common import (
    Projections,
    causal_mask,
    merge_heads,
    projection_macs,
    projection_params,
)
from archsearch.models.registry import ATTENTION, BlockContext, Family, register


class FullAttention(nn.Module):
    """Every query sees every (earlier, when causal) key, memory included."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        self.causal = ctx.causal
        self.proj = Projections(ctx.d_model, ctx.layer.qkv_dim(ctx.d_model), ctx.layer.heads)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.proj.qkv(x, memory)
        if self.causal and memory is not None:
            mask = causal_mask(q.shape[-2], k.shape[-2], x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj.out(merge_heads(y))


def full_attention_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections plus Q.K^T and A.V over the whole (dense-kernel) score matrix."""
    keys = tokens + extra_keys
    scores = 2 * tokens * keys * ctx.layer.qkv_dim(ctx.d_model)
    return projection_macs(ctx, tokens, extra_keys) + scores


register(
    ATTENTION,
    Family(
        name="full",
        build=FullAttention,
        macs=full_attention_macs,
        params=projection_params,
        supports_memory=True,
    ),
)
