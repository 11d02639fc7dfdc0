"""A pre-norm Transformer block assembled from registered families."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.models.attention.cross import CrossAttention
from archsearch.models.registry import BlockContext, attention_family, ffn_family
from archsearch.models.retrieval import ChunkedCrossAttention


class Block(nn.Module):
    """x + attn(norm(x)) [+ cross(norm(x), encoder)] [+ cca(norm(x), neighbours)]
    + ffn(norm(x)), pre-norm like GPT-2."""

    def __init__(
        self, layer: LayerConfig, arch: ArchConfig, *, causal: bool, encoder: bool = False
    ):
        super().__init__()
        ctx = BlockContext(layer=layer, arch=arch, causal=causal, encoder=encoder)
        d = arch.d_model
        self.attn_norm = nn.LayerNorm(d)
        self.attn = attention_family(layer.attention).build(ctx)
        self.cross_norm: nn.LayerNorm | None = None
        self.cross: CrossAttention | None = None
        if arch.task == "seq2seq" and not encoder:
            self.cross_norm = nn.LayerNorm(d)
            self.cross = CrossAttention(d, layer.qkv_dim(d), layer.heads)
        self.cca_norm: nn.LayerNorm | None = None
        self.cca: ChunkedCrossAttention | None = None
        if layer.retrieve and arch.retrieval_chunk and not encoder:
            self.cca_norm = nn.LayerNorm(d)
            self.cca = ChunkedCrossAttention(arch, layer)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = ffn_family(layer.ffn).build(ctx)
        self.dropout = nn.Dropout(arch.dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        read: Callable[[torch.Tensor], torch.Tensor] | None = None,
        neighbours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.attn_norm(x)
        x = x + self.dropout(self._attend(h, memory, read))  # the attention output is freed here
        if self.cross is not None and self.cross_norm is not None:
            x = x + self.dropout(self.cross(self.cross_norm(x), context))
        if self.cca is not None and self.cca_norm is not None:
            if neighbours is None:
                raise ValueError("a retrieving block needs the encoded neighbours")
            x = x + self.dropout(self.cca(self.cca_norm(x), neighbours))
        y, aux = self.ffn(self.ffn_norm(x))
        return x + self.dropout(y), aux

    def _attend(
        self,
        h: torch.Tensor,
        memory: torch.Tensor | None,
        read: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> torch.Tensor:
        """Attention over the normalised segment (and its memory, normalised like it), plus a
        memory read beside attention (infinity-former)."""
        attended = self.attn(h) if memory is None else self.attn(h, self.attn_norm(memory))
        return attended if read is None else attended + read(h)
