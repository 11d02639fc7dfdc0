"""Sequence-length warm-up: a recipe's ``curriculum: {start_seq_len, fraction}``.

Li et al. 2022 ("The Stability-Efficiency Dilemma: Investigating Sequence Length Warmup for
Training GPT Models") grow the training sequence length linearly during the first part of
training: short early steps are cheaper and steadier. Here, with ``S`` = ``start_seq_len``,
``T`` = the recipe's ``seq_len``, ``N`` = its steps and ``R = max(1, round(fraction * N))``,
step ``i`` trains on sequences of

    L(i) = min(T, max(S, 8 * floor((S + (T - S) * i // R) / 8)))   for i < R,   T otherwise,

i.e. the linear ramp rounded DOWN to a multiple of 8 (kernel-friendly shapes, as in the paper),
never below ``S`` and never above ``T``. So L(0) = S, the lengths never decrease, and step R
(the end of the ``fraction``) is the first at full length. The number of steps, the learning
rate schedule and validation (always at ``seq_len``) are those of the same recipe without a
curriculum; the tokens trained on are fewer, and are counted exactly (``cumulative_tokens``).

Segments stay contiguous: each row's segment starts where its previous one ended, whatever the
lengths, so a model with recurrent memory (Transformer-XL, compressive) carries its state exactly
as without a curriculum (the paper truncates each sequence instead, which would break that
continuity). A segment is ``fresh`` (state starts empty) only at step 0 and where the stream
wraps around to its start because the next segment would run past the end. With every length
equal to ``seq_len`` this reads exactly the segments ``StreamBatches`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import torch

from archsearch.errors import InputError
from archsearch.evaluate.data import Batch, Batches
from archsearch.evaluate.recipe import Recipe

MULTIPLE = 8


def seq_lens(recipe: Recipe) -> list[int]:
    """The training sequence length of every step (all ``seq_len`` without a curriculum)."""
    full, steps = recipe.seq_len, recipe.steps
    if recipe.curriculum is None:
        return [full] * steps
    start = recipe.curriculum.start_seq_len
    ramp = max(1, round(recipe.curriculum.fraction * steps))
    lengths = []
    for step in range(steps):
        if step >= ramp:
            lengths.append(full)
            continue
        linear = start + (full - start) * step // ramp  # integers: no float rounding
        lengths.append(min(full, max(start, linear // MULTIPLE * MULTIPLE)))
    return lengths


def cumulative_tokens(recipe: Recipe) -> list[int]:
    """Entry i: the tokens trained on in steps 0..i (batch_size x the sum of their lengths)."""
    return [recipe.batch_size * total for total in accumulate(seq_lens(recipe))]


class CurriculumBatches:
    """Training batches of growing length cut contiguously from a text source's streams;
    validation batches are the source's own (full ``seq_len``)."""

    answers_only = False

    def __init__(self, base: Batches, lengths: Sequence[int]):
        self.fingerprint, self.description = base.fingerprint, base.description
        self._base = base
        self._streams: torch.Tensor = base.train_streams  # type: ignore[attr-defined]
        self._lengths = list(lengths)
        columns = self._streams.shape[1]
        self._starts: list[int] = []
        self._fresh: list[bool] = []
        offset = 0
        for step, length in enumerate(self._lengths):
            if length + 1 > columns:
                raise InputError(
                    f"the training split is too short for segments of {length} tokens",
                    key="data",
                )
            wraps = offset + length + 1 > columns
            if wraps:
                offset = 0
            self._starts.append(offset)
            self._fresh.append(step == 0 or wraps)
            offset += length

    def train(self, step: int) -> Batch:
        start, length = self._starts[step], self._lengths[step]
        window = self._streams[:, start : start + length + 1].long()
        return Batch(window[:, :-1], window[:, 1:], fresh=self._fresh[step], start=start)

    def valid(self, index: int) -> Batch:
        return self._base.valid(index)


def with_curriculum(batches: Batches, recipe: Recipe, repeat: int = 1) -> Batches:
    """``batches`` as the recipe's curriculum trains on them (unchanged without one).

    ``repeat`` > 1 gives every step's length to ``repeat`` consecutive segments: the candidate
    pool of active selection reads ``repeat`` segments per training step (selection.py).
    Only contiguous text streams can be cut to other lengths: a curriculum on any other source
    (synthetic tasks) is refused.
    """
    if recipe.curriculum is None or isinstance(batches, CurriculumBatches):
        return batches
    if getattr(batches, "train_streams", None) is None:
        raise InputError(
            "a sequence-length curriculum needs text data (python_stdlib, files:, hf:); "
            f"{recipe.data} has fixed-format sequences",
            key="curriculum",
        )
    return CurriculumBatches(batches, [n for n in seq_lens(recipe) for _ in range(repeat)])
