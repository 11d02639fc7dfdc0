"""Cross-attention of a seq2seq decoder over the encoder's output (always full, never causal)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families.cross import cross_attention_macs, cross_attention_params
from archsearch.models.attention.common import merge_heads, split_heads

__all__ = ["CrossAttention", "cross_attention_macs", "cross_attention_params"]


class CrossAttention(nn.Module):
    """Decoder queries attend to every encoder position."""

    def __init__(self, d_model: int, attn_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, attn_dim, bias=False)
        self.k = nn.Linear(d_model, attn_dim, bias=False)
        self.v = nn.Linear(d_model, attn_dim, bias=False)
        self.out = nn.Linear(attn_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = split_heads(self.q(x), self.heads)
        k = split_heads(self.k(context), self.heads)
        v = split_heads(self.v(context), self.heads)
        return self.out(merge_heads(F.scaled_dot_product_attention(q, k, v)))
