"""Cross-attention of a seq2seq decoder over the encoder's output (always full, never causal)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.cross import cross_attention_macs, cross_attention_params
from archsearch.models.attention.common import merge_heads, split_heads

__all__ = ["CrossAttention", "cross_attention_macs", "cross_attention_params"]


class CrossAttention(nn.Module):
    """Decoder queries attend to every position of the encoder outputs the layer reads.

    Keys and values are projected from the encoder's width, which may differ from the decoder's
    (HAT picks the two separately). A layer reading the last k encoder layers gets their outputs
    joined along the sequence (k x source positions), as HAT's arbitrary encoder-decoder
    attention does; no positions are applied, so the order of the parts does not matter.
    """

    def __init__(self, ctx: BlockContext):
        super().__init__()
        d, source_d = ctx.arch.d_model, ctx.arch.encoder_width
        width, bias = ctx.layer.qkv_dim(d), ctx.arch.bias
        self.heads = ctx.layer.cross_head_count
        self.reads = ctx.layer.cross_layers
        self.q = nn.Linear(d, width, bias=bias)
        self.k = nn.Linear(source_d, width, bias=bias)
        self.v = nn.Linear(source_d, width, bias=bias)
        self.out = nn.Linear(width, d, bias=bias)

    def forward(self, x: torch.Tensor, encoder_outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """``encoder_outputs``: the encoder's last layers' outputs, last layer first."""
        parts = encoder_outputs[: self.reads]
        context = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        q = split_heads(self.q(x), self.heads)
        k = split_heads(self.k(context), self.heads)
        v = split_heads(self.v(context), self.heads)
        return self.out(merge_heads(F.scaled_dot_product_attention(q, k, v)))
