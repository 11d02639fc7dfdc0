"""RETRO's neighbour encoder: the retrieved neighbours' token ids to the states CCA reads.

Each neighbour (a stored chunk and its continuation, 2m tokens) is embedded with the model's own
token table, then encoded by one bidirectional block (full attention, dense FFN, layer 0's
widths, ``archsearch.families.retrieval.encoder_layer``) and a layer norm.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.families.retrieval import encoder_layer
from archsearch.models.blocks import Block


class NeighbourEncoder(nn.Module):
    """One bidirectional block (full attention, dense FFN) and a norm over each neighbour."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
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
