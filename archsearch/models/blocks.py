"""A Transformer block assembled from registered families: pre-norm (GPT-2) or post-norm
(fairseq's Transformer, which HAT uses)."""

from __future__ import annotations

import torch
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.models.attention.cross import CrossAttention
from archsearch.models.registry import BlockContext, attention_family, ffn_family


class Block(nn.Module):
    """pre:  x + attn(norm(x)) [+ cross(norm(x), encoder)] + ffn(norm(x)), like GPT-2;
    post: norm(x + attn(x)), [norm(x + cross(x, encoder))], norm(x + ffn(x)), like fairseq."""

    def __init__(
        self, layer: LayerConfig, arch: ArchConfig, *, causal: bool, encoder: bool = False
    ):
        super().__init__()
        ctx = BlockContext(layer=layer, arch=arch, causal=causal, encoder=encoder)
        d = ctx.d_model
        self.post = arch.norm == "post"
        self.attn_norm = nn.LayerNorm(d)
        family = attention_family(layer.attention)
        self.attn = family.build(ctx)
        self.attn_aux = family.aux_loss  # the module returns (y, aux_loss)
        self.cross_norm: nn.LayerNorm | None = None
        self.cross: CrossAttention | None = None
        if arch.task == "seq2seq" and not encoder:
            self.cross_norm = nn.LayerNorm(d)
            self.cross = CrossAttention(ctx)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = ffn_family(layer.ffn).build(ctx)
        self.dropout = nn.Dropout(arch.dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        context: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``context``: the encoder outputs cross-attention may read, last layer first."""
        if self.post:
            return self._post(x, memory, context)
        h = self.attn_norm(x)
        # memory holds earlier inputs of this layer: normalised like the segment
        attended = self.attn(h) if memory is None else self.attn(h, self.attn_norm(memory))
        attn_aux = None
        if self.attn_aux:
            attended, attn_aux = attended
        x = x + self.dropout(attended)
        if self.cross is not None and self.cross_norm is not None:
            assert context is not None
            x = x + self.dropout(self.cross(self.cross_norm(x), context))
        y, aux = self.ffn(self.ffn_norm(x))
        if attn_aux is not None:
            aux = aux + attn_aux
        return x + self.dropout(y), aux

    def _post(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        context: tuple[torch.Tensor, ...] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # memory holds earlier inputs of this layer, already normalised by the block before
        y = self.attn(x) if memory is None else self.attn(x, memory)
        x = self.attn_norm(x + self.dropout(y))
        if self.cross is not None and self.cross_norm is not None:
            assert context is not None
            x = self.cross_norm(x + self.dropout(self.cross(x, context)))
        y, aux = self.ffn(x)
        return self.ffn_norm(x + self.dropout(y)), aux
