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

from archsearch.errors import InputError
from archsearch.models.attention.common import Projections, merge_heads
from archsearch.models.attention.convolution import (
    ConvBranch,
    conv_branch_macs,
    conv_branch_params,
)
from archsearch.models.registry import ATTENTION, BlockContext, Family, register


def branch_widths(ctx: BlockContext) -> tuple[int, int]:
    """(attention channels, convolution channels); they add up to d_model."""
    attention = round(ctx.d_model * ctx.layer.lsra_split)
    return attention, ctx.d_model - attention


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


def lsra_params(ctx: BlockContext) -> int:
    """Four a x a projections plus the convolution branch (if any)."""
    a, c = branch_widths(ctx)
    conv = conv_branch_params(c, ctx.layer.conv_kernel, ctx.layer.heads, ctx.layer.conv_type)
    return 4 * a * a + (conv if c else 0)


def lsra_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Attention branch: four a x a projections per token and Q.K^T, A.V over the whole
    (dense-kernel, even when causal) tokens x tokens score matrix: 4*T*a^2 + 2*T^2*a.
    Convolution branch: ``conv_branch_macs`` (projections, convolution, dynamic kernels).
    ``extra_keys`` is always 0: the family does not support memory."""
    a, c = branch_widths(ctx)
    attention = 4 * tokens * a * a + 2 * tokens * tokens * a
    layer = ctx.layer
    conv = conv_branch_macs(c, layer.conv_kernel, layer.heads, layer.conv_type, tokens)
    return attention + (conv if c else 0)


def validate_lsra(ctx: BlockContext) -> None:
    """The attention width must split into even-width heads; no attn_dim, no window, and a
    convolution branch (if any) with a kernel of at least 2."""
    layer, d = ctx.layer, ctx.d_model
    if layer.attn_dim is not None:
        raise InputError(
            "lsra sets its attention width from lsra_split; leave attn_dim unset", key="attn_dim"
        )
    if layer.window > 0:
        raise InputError(
            "lsra's attention branch is global (the convolution branch is the local part); "
            "window must be 0",
            key="window",
        )
    a, c = branch_widths(ctx)
    step = 2 * layer.heads
    if a < step or a % step:
        raise InputError(
            f"{layer.lsra_split} puts round({d} * {layer.lsra_split}) = {a} channels on the "
            f"attention branch; that must be a positive multiple of 2 * heads = {step} (even "
            f"head width for rotary positions). Valid lsra_split values for d_model={d}, "
            f"heads={layer.heads}: {_valid_splits(d, step)}",
            key="lsra_split",
        )
    if c and layer.conv_kernel < 2:
        raise InputError(
            "a softmax-normalised kernel of size 1 is the constant 1 (its weights would never "
            "train); use conv_kernel >= 2",
            key="conv_kernel",
        )
    # The convolution's heads kernel groups need c % heads == 0: with a a multiple of heads,
    # that is d_model % heads == 0, which ArchConfig already checks when attn_dim is unset.


def _valid_splits(d_model: int, step: int) -> str:
    """The splits m * step / d_model, listed in full when short, else as a progression."""
    values = [m * step / d_model for m in range(1, d_model // step + 1)]
    if not values:
        return f"none (d_model is smaller than {step})"
    shown = [f"{v:.6g}" for v in values]
    if len(shown) <= 8:
        return ", ".join(shown)
    return f"{shown[0]}, {shown[1]}, ..., {shown[-1]} (multiples of {step}/{d_model})"


register(
    ATTENTION,
    Family(
        name="lsra",
        build=LongShortRangeAttention,
        macs=lsra_macs,
        params=lsra_params,
        validate=validate_lsra,
        supports_memory=False,
        head_width=lambda ctx: branch_widths(ctx)[0] // ctx.layer.heads,
    ),
)
