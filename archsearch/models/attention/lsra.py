"""Lite Transformer's long-short range attention (LSRA, Wu et al. 2020).

The block input is split along channels: the first ``a = round(d_model * lsra_split)`` channels
go to a full-attention branch (long range), the other ``d_model - a`` to a convolution branch
(short range: GLU, lightweight or dynamic convolution, linear; see ``convolution.py``). Each
branch has its own projections back to its own width, as in Lite Transformer's code, and the two
outputs are concatenated back to ``d_model``; there is no shared output projection.

The attention branch is full softmax attention with ``heads`` heads of width ``a / heads``,
rotary positions, and fused SDPA, with q/k/v/output projections of ``a x a``. Its width comes
from ``lsra_split`` alone, so ``attn_dim`` must be left unset. With ``lsra_split: 1.0`` the
convolution branch is absent and the module is exactly ``attention: full`` (same parameter names,
so state dicts load across). The convolution uses ``heads`` kernel groups (H_conv = heads, as
Lite Transformer's configs do). Local windows and recurrent memory are not supported.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.lsra import branch_widths, lsra_macs, lsra_params, validate_lsra
from archsearch.models.attention.common import Projections, merge_heads
from archsearch.models.attention.convolution import ConvBranch

__all__ = ["LongShortRangeAttention", "branch_widths", "lsra_macs", "lsra_params", "validate_lsra"]


class LongShortRangeAttention(nn.Module):
    """Attention over the first channels, convolution over the rest, concatenated."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        layer = ctx.layer
        self.causal = ctx.causal
        self.attn_width, conv_width = branch_widths(ctx)
        self.proj = Projections(self.attn_width, self.attn_width, layer.heads)
        self.conv: ConvBranch | None = None
        if conv_width:
            self.conv = ConvBranch(
                conv_width, layer.conv_kernel, layer.heads, layer.conv_type, ctx.causal
            )

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        if memory is not None:
            raise ValueError("lsra attention does not support recurrent memory")
        q, k, v = self.proj.qkv(x[..., : self.attn_width], None)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        attended = self.proj.out(merge_heads(y))
        if self.conv is None:
            return attended
        return torch.cat((attended, self.conv(x[..., self.attn_width :])), dim=-1)
