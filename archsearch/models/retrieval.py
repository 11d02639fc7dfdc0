"""RETRO-style retrieval in the model: chunked cross-attention (CCA); the neighbour encoder is
``archsearch.models.neighbour_encoder`` (it is built from a block, which builds CCA from here).

Neighbours come in as token ids ``[B, R, k, 2m]`` (the evaluator looks them up, see
``archsearch.evaluate.retrieval``): for each of the R chunks of m tokens that have a successor,
k stored chunks with their continuations. They are embedded with the model's own token table,
encoded once per forward by one bidirectional block, and every retrieving layer's CCA lets
chunk c's tokens attend to chunk c - 1's neighbours. Chunk 0 reads nothing (its output is zero),
so causality holds: chunk c - 1's neighbours depend only on tokens before chunk c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.families import BlockContext
from archsearch.families.retrieval import retrieved_chunks
from archsearch.models.attention.cross import CrossAttention


class ChunkedCrossAttention(nn.Module):
    """Tokens of chunk c (c >= 1) attend to the encoded neighbours of chunk c - 1."""

    def __init__(self, arch: ArchConfig, layer: LayerConfig):
        super().__init__()
        self.chunk = arch.retrieval_chunk
        ctx = BlockContext(layer=layer, arch=arch, causal=True, encoder=False)
        self.attend = CrossAttention(ctx)  # causal_lm: the neighbours are its one source

    def forward(self, h: torch.Tensor, encoded: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        m, r = self.chunk, encoded.shape[1]
        if r == 0:
            return torch.zeros_like(h)
        later = h[:, m:]  # [B, T - m, D]: the tokens that have a previous chunk
        padded = F.pad(later, (0, 0, 0, r * m - later.shape[1]))  # last chunk to m tokens
        out = self.attend(padded.reshape(b * r, m, d), (encoded.reshape(b * r, -1, d),))
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
