"""Training data order per seed, for runs that must vary more than their initial weights.

A recipe's ``seed`` seeds the initial weights only: every run of a recipe trains on the same
batches in the same order, which is what a search wants (candidates differ by architecture
alone). Confirming a winner wants seeds that also vary the data (``confirm``): seed s starts
the training streams s x ``STRIDE`` segments further on, wrapping around the split. Seed 0 is
the recipe's own order, so a confirm's seed 0 trains on what the search trained on.
Validation batches never move: every run is measured on the same bytes.

Shifting the segment index keeps each row a contiguous stream (memory models carry their state
as before; ``segment`` marks the wrap as fresh), and a curriculum cuts its segments from the
same shifted streams.
"""

from __future__ import annotations

import torch

from archsearch.evaluate.data import Batch, Batches

STRIDE = 104_729  # segments per seed; a prime, so seeds land far apart on any split length


class ShiftedBatches:
    """``batches`` whose training segments start ``shift`` segments further on."""

    def __init__(self, batches: Batches, shift: int):
        self.inner = batches
        self.shift = shift
        self.fingerprint = batches.fingerprint
        self.description = batches.description
        self.answers_only = batches.answers_only

    def train(self, step: int) -> Batch:
        return self.inner.train(step + self.shift)

    def valid(self, index: int) -> Batch:
        return self.inner.valid(index)

    def __getattr__(self, name: str) -> object:
        if name == "train_streams":  # a curriculum cuts its segments from these
            streams = self.inner.train_streams  # type: ignore[attr-defined]
            seq_len = self.inner.seq_len  # type: ignore[attr-defined]
            per_stream = (streams.shape[1] - 1) // seq_len
            return torch.roll(streams, -(self.shift % per_stream) * seq_len, dims=1)
        return getattr(self.inner, name)


def seeded_order(batches: Batches, seed: int) -> Batches:
    """``batches`` in seed ``seed``'s training order (seed 0: unchanged)."""
    if seed == 0:
        return batches
    return ShiftedBatches(batches, seed * STRIDE)
