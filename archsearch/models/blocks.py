"""A Transformer block assembled from registered families: pre-norm (GPT-2) or post-norm
(fairseq's Transformer, which HAT uses)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.models.attention.cross import CrossAttention
from archsearch.models.registry import BlockContext, attention_family, ffn_family
from archsearch.models.retrieval import ChunkedCrossAttention


class Block(nn.Module):
    """pre:  x + attn(norm(x)) [+ cross(norm(x), encoder)] [+ cca(norm(x), neighbours)]
    + ffn(norm(x)), like GPT-2;
    post: norm(x + attn(x)), [norm(x + cross(x, encoder))], norm(x + ffn(x)), like fairseq
    (no memory read nor retrieval: validate_config refuses them)."""

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
        context: tuple[torch.Tensor, ...] | None = None,
        read: Callable[[torch.Tensor], torch.Tensor] | None = None,
        neighbours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``context``: the encoder outputs cross-attention may read, last layer first."""
        if self.post:
            if read is not None or self.cca is not None:
                raise ValueError(
                    "post-norm blocks neither read a memory beside attention nor retrieve"
                )
            return self._post(x, memory, context)
        h = self.attn_norm(x)
        attended, attn_aux = self._attend(h, memory, read)
        x = x + self.dropout(attended)
        del attended  # the attention output is freed before the FFN
        if self.cross is not None and self.cross_norm is not None:
            assert context is not None
            x = x + self.dropout(self.cross(self.cross_norm(x), context))
        if self.cca is not None and self.cca_norm is not None:
            if neighbours is None:
                raise ValueError("a retrieving block needs the encoded neighbours")
            x = x + self.dropout(self.cca(self.cca_norm(x), neighbours))
        y, aux = self.ffn(self.ffn_norm(x))
        if attn_aux is not None:
            aux = aux + attn_aux
        return x + self.dropout(y), aux

    def _attend(
        self,
        h: torch.Tensor,
        memory: torch.Tensor | None,
        read: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention over the normalised segment (and its memory, normalised like it), plus a
        memory read beside attention (infinity-former); and the attention's aux loss, if any."""
        attended = self.attn(h) if memory is None else self.attn(h, self.attn_norm(memory))
        attn_aux = None
        if self.attn_aux:
            attended, attn_aux = attended
        return (attended if read is None else attended + read(h)), attn_aux

    def _post(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None,
        context: tuple[torch.Tensor, ...] | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # memory holds earlier inputs of this layer, already normalised by the block before
        y = self.attn(x) if memory is None else self.attn(x, memory)
        attn_aux = None
        if self.attn_aux:
            y, attn_aux = y
        x = self.attn_norm(x + self.dropout(y))
        if self.cross is not None and self.cross_norm is not None:
            assert context is not None
            x = self.cross_norm(x + self.dropout(self.cross(x, context)))
        y, aux = self.ffn(x)
        if attn_aux is not None:
            aux = aux + attn_aux
        return self.ffn_norm(x + self.dropout(y)), aux
