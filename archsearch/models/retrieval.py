"""RETRO-style retrieval in the model: the neighbour encoder and chunked cross-attention (CCA).

Neighbours come in as token ids ``[B, R, k, 2m]`` (the evaluator looks them up, see
``archsearch.evaluate.retrieval``): for each of the R chunks of m tokens that have a successor,
k stored chunks with their continuations. They are embedded with the model's own token table,
encoded once per forward by one bidirectional block, and every retrieving layer's CCA lets
chunk c's tokens attend to chunk c - 1's neighbours. Chunk 0 reads nothing (its output is zero),
so causality holds: chunk c - 1's neighbours depend only on tokens before chunk c.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.families.retrieval import encoder_layer, retrieved_chunks
from archsearch.models.attention.cross import CrossAttention


class NeighbourEncoder(nn.Module):
    """One bidirectional block (full attention, dense FFN) and a norm over each neighbour."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        from archsearch.models.blocks import Block  # blocks build CCA from this module

        self.block = Block(encoder_layer(arch), arch, causal=False, encoder=True)
        self.norm = nn.LayerNorm(arch.d_model)
        self.d_model = arch.d_model

    def forward(
        self, neighbours: torch.Tensor, embed: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        b, r, k, n = neighbours.shape
        if r == 0:  # a segment of one chunk: nothing to read
            return self.norm.weight.new_zeros(b, 0, k * n, self.d_model)
        x = embed(neighbours.reshape(b * r * k, n))  # [B*R*k, 2m, D]
        x, _ = self.block(x)
        return self.norm(x).reshape(b, r, k * n, -1)  # [B, R, k*2m, D]


class ChunkedCrossAttention(nn.Module):
    """Tokens of chunk c (c >= 1) attend to the encoded neighbours of chunk c - 1."""

    def __init__(self, arch: ArchConfig, layer: LayerConfig):
        super().__init__()
        self.chunk = arch.retrieval_chunk
        d = arch.d_model
        self.attend = CrossAttention(d, layer.qkv_dim(d), layer.heads)

    def forward(self, h: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        m, r = self.chunk, encoded.shape[1]
        if r == 0:
            return torch.zeros_like(h)
        later = h[:, m:]  # [B, T - m, D]: the tokens that have a previous chunk
        padded = F.pad(later, (0, 0, 0, r * m - later.shape[1]))  # last chunk to m tokens
        out = self.attend(padded.reshape(b * r, m, d), encoded.reshape(b * r, -1, d))
        out = out.reshape(b, r * m, d)[:, : t - m]
        return torch.cat((h.new_zeros(b, m, d), out), 1)


def check_neighbours(arch: ArchConfig, tokens: int, neighbours: torch.Tensor | None) -> None:
    """A clear error when the caller hands the wrong neighbours (or none)."""
    expected = (retrieved_chunks(arch, tokens), arch.retrieval_k, 2 * arch.retrieval_chunk)
    if neighbours is None:
        raise ValueError(
            "this model retrieves (retrieval_chunk > 0): pass neighbours [batch, chunks, k, 2m]"
            " from archsearch.evaluate.retrieval"
        )
    if tuple(neighbours.shape[1:]) != expected:
        raise ValueError(
            f"neighbours of shape {tuple(neighbours.shape)}, expected [batch, *{expected}] "
            f"for {tokens} tokens"
        )


def random_neighbours(arch: ArchConfig, batch: int, tokens: int) -> torch.Tensor:
    """Random neighbour ids of the right shape: what latency is timed with (the search itself
    is not part of the model, see ``archsearch.families.retrieval``)."""
    shape = (batch, retrieved_chunks(arch, tokens), arch.retrieval_k, 2 * arch.retrieval_chunk)
    return torch.randint(0, arch.vocab_size, shape)
