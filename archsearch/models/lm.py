"""The language models: decoder-only (causal_lm) and encoder-decoder (seq2seq).

Read top to bottom: embeddings (optionally ALBERT-factorized), a stack of blocks (optionally one
shared block, ALBERT-style), a final norm (pre-norm models only: post-norm blocks end normalised,
as in fairseq), and logits tied to the embedding table by default.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.families.retrieval import retrieves
from archsearch.models.blocks import Block
from archsearch.models.memory import build_memory
from archsearch.models.neighbour_encoder import NeighbourEncoder
from archsearch.models.output import ModelOutput
from archsearch.models.retrieval import check_neighbours


class Embedding(nn.Module):
    """Token table of width E, projected to the stack's width when they differ (ALBERT)."""

    def __init__(self, arch: ArchConfig, width: int | None = None):
        super().__init__()
        width = arch.d_model if width is None else width
        table_width = arch.embed_dim if arch.embed_dim is not None else width
        self.table = nn.Embedding(arch.vocab_size, table_width)
        self.project = nn.Linear(table_width, width, bias=False) if table_width != width else None
        nn.init.normal_(self.table.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.table(tokens)
        return x if self.project is None else self.project(x)


class OutputHead(nn.Module):
    """Final norm, projection back to E when factorized, then logits over the vocabulary."""

    def __init__(self, arch: ArchConfig, embedding: Embedding):
        super().__init__()
        self.norm = nn.LayerNorm(arch.d_model) if arch.norm == "pre" else nn.Identity()
        self.project = (
            nn.Linear(arch.d_model, arch.embedding_width, bias=False)
            if arch.embedding_width != arch.d_model
            else None
        )
        self.logits = nn.Linear(arch.embedding_width, arch.vocab_size, bias=False)
        if arch.tie_embeddings:
            self.logits.weight = embedding.table.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        if self.project is not None:
            x = self.project(x)
        return self.logits(x)


def build_stack(
    layers: tuple[LayerConfig, ...], arch: ArchConfig, *, causal: bool, encoder: bool
) -> nn.ModuleList:
    """One block per layer, or the same block repeated when layers are shared (ALBERT)."""
    if arch.share_layers:
        shared = Block(layers[0], arch, causal=causal, encoder=encoder)
        return nn.ModuleList([shared] * len(layers))
    return nn.ModuleList(Block(layer, arch, causal=causal, encoder=encoder) for layer in layers)


class CausalLM(nn.Module):
    """Decoder-only language model; with memory, state carries across consecutive segments;
    with retrieval, ``neighbours`` (token ids ``[B, R, k, 2m]``) are read by chunked
    cross-attention."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.embed = Embedding(arch)
        self.blocks = build_stack(arch.layers, arch, causal=True, encoder=False)
        self.memory = build_memory(arch)
        self.retrieval = NeighbourEncoder(arch) if retrieves(arch) else None
        self.head = OutputHead(arch, self.embed)
        self.dropout = nn.Dropout(arch.dropout)

    def forward(
        self, tokens: torch.Tensor, state: Any = None, neighbours: torch.Tensor | None = None
    ) -> ModelOutput:
        encoded = None
        if self.retrieval is not None:
            check_neighbours(self.arch, tokens.shape[1], neighbours)
            assert neighbours is not None
            encoded = self.retrieval(neighbours, lambda n: self.dropout(self.embed(n)))
        x = self.dropout(self.embed(tokens))
        aux = x.new_zeros(())
        layer_states = []
        for index, block in enumerate(self.blocks):
            context = self.memory.context(state, index)
            read = self.memory.reader(state, index)
            layer_state, memory_aux = self.memory.update(state, index, x)
            layer_states.append(layer_state)
            x, block_aux = block(x, memory=context, read=read, neighbours=encoded)
            aux = aux + block_aux + memory_aux
        return ModelOutput(self.head(x), aux, self.memory.finish(layer_states))


class Seq2SeqLM(nn.Module):
    """Encoder-decoder with cross-attention.

    Source and target share one embedding table when both stacks have the same width; an
    encoder of its own width (``encoder_d_model``) has its own table, as fairseq's Transformer
    without shared embeddings. Cross-attention may read the last 1-3 encoder layers
    (``cross_layers``); in a pre-norm model each output it reads goes through the encoder's
    final norm, in a post-norm model the blocks' outputs are already normalised.
    """

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.embed = Embedding(arch)
        self.source_embed: Embedding | None = None
        if arch.encoder_width != arch.d_model:
            self.source_embed = Embedding(arch, arch.encoder_width)
        self.encoder = build_stack(arch.encoder_layers, arch, causal=False, encoder=True)
        self.encoder_norm = (
            nn.LayerNorm(arch.encoder_width) if arch.norm == "pre" else nn.Identity()
        )
        self.reads = max(layer.cross_layers for layer in arch.layers)
        self.decoder = build_stack(arch.layers, arch, causal=True, encoder=False)
        self.head = OutputHead(arch, self.embed)
        self.dropout = nn.Dropout(arch.dropout)

    def encode(self, source: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The outputs of the encoder's last ``reads`` layers (last first), and the aux loss."""
        embed = self.embed if self.source_embed is None else self.source_embed
        x = self.dropout(embed(source))
        aux = x.new_zeros(())
        first_kept = len(self.encoder) - self.reads
        kept = []
        for index, block in enumerate(self.encoder):
            x, block_aux = block(x)
            aux = aux + block_aux
            if index >= first_kept:
                kept.append(x)
        return tuple(self.encoder_norm(out) for out in reversed(kept)), aux

    def forward(self, tokens: torch.Tensor, source: torch.Tensor, state: Any = None) -> ModelOutput:
        context, aux = self.encode(source)
        x = self.dropout(self.embed(tokens))
        for block in self.decoder:
            x, block_aux = block(x, context=context)
            aux = aux + block_aux
        return ModelOutput(self.head(x), aux, None)
