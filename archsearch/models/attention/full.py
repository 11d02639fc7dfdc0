"""Full softmax attention through PyTorch's fused scaled_dot_product_attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.full import full_attention_macs
from archsearch.models.attention.common import Projections, causal_mask, merge_heads

__all__ = ["FullAttention", "full_attention_macs"]


class FullAttention(nn.Module):
    """Every query sees every (earlier, when causal) key, memory included."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        self.causal = ctx.causal
        self.proj = Projections(
            ctx.d_model, ctx.layer.qkv_dim(ctx.d_model), ctx.layer.heads, bias=ctx.arch.bias
        )

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.proj.qkv(x, memory)
        if self.causal and memory is not None:
            mask = causal_mask(q.shape[-2], k.shape[-2], x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj.out(merge_heads(y))
