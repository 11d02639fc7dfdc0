"""What every source of training data hands the trainer: a ``Batch``, from ``Batches``.

A module of its own so the text sources (``data.py``) and the generated tasks
(``synthetic.py``) can both build on it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

IGNORE = -100  # target of a position that is not scored (cross_entropy's ignore_index)


@dataclass(frozen=True)
class Batch:
    """One step's inputs and targets, ``[batch, seq_len]`` token ids each.

    ``targets`` is ``IGNORE`` where nothing is scored (synthetic tasks score only their answers).
    ``fresh`` is True where recurrent state must start empty. ``source`` is the encoder input of
    a seq2seq batch. ``start`` is the column the rows were cut from in their split's streams
    (text sources), so retrieval can skip the text a training row comes from.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    fresh: bool
    source: torch.Tensor | None = None
    start: int | None = None


class Batches(Protocol):
    """A deterministic source of batches: the same index always gives the same batch."""

    fingerprint: str
    description: str
    answers_only: bool  # True when only some positions are scored (report accuracy too)

    def train(self, step: int) -> Batch: ...

    def valid(self, index: int) -> Batch: ...
