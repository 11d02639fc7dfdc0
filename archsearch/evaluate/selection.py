"""Active data selection: a recipe's ``selection: {pool, by}``.

The survey's "active learning" for pre-training: instead of the next batch in the data order,
each step trains on the ``batch_size`` sequences it picks from a larger candidate pool. The pool
of step i is the next ``pool`` batches of the same order (segments ``pool * i`` to
``pool * i + pool - 1``, each ``batch_size`` rows), so a run with selection reads ``pool`` times
as much text as one without, in the same order, for the same training tokens.

- ``by: loss`` scores every candidate with the model as it stands (eval mode, no gradient: no
  dropout or routing noise, and no draw from torch's random generator), the mean loss over its
  scored tokens, and keeps the ``batch_size`` highest: what the model predicts worst.
- ``by: random`` keeps ``batch_size`` candidates drawn uniformly (a generator seeded by the
  recipe's seed and the step): the control that reads as much text without the loss.

The chosen rows keep their pool order. Validation is untouched. Costs: ``by: loss`` runs a
forward pass over the whole pool every step (``pool x batch_size`` sequences, no backward),
on top of training's forward and backward over the chosen batch; ``scoring_macs`` counts them.
The chosen sequences do not continue the previous step's rows, so every selected batch is
``fresh``: a model with recurrent memory trains without carried memory (it still validates
with it). ``train_bpb`` is the loss on the chosen sequences, so with ``by: loss`` it is higher
than the loss of the data order by construction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig
from archsearch.evaluate.batch import IGNORE, Batch, Batches
from archsearch.evaluate.curriculum import seq_lens, with_curriculum
from archsearch.evaluate.recipe import Recipe

Forward = Callable[[nn.Module, Batch, Any], Any]


class Selector:
    """Each step's training batch, chosen from its candidate pool; counts what choosing cost."""

    def __init__(self, recipe: Recipe, batches: Batches):
        if recipe.selection is None:
            raise ValueError("the recipe has no selection")
        self.pool_size = recipe.selection.pool
        self.by = recipe.selection.by
        self.rows = recipe.batch_size
        self.seed = recipe.seed
        self._source = with_curriculum(batches, recipe, repeat=self.pool_size)
        self.seconds = 0.0  # wall time spent scoring and choosing
        self.scored_tokens = 0  # tokens run through the model only to score them

    def pool(self, step: int) -> list[Batch]:
        """Step ``step``'s candidates: the next ``pool`` batches of the data order."""
        first = step * self.pool_size
        return [self._source.train(first + j) for j in range(self.pool_size)]

    def choose(self, model: nn.Module, step: int, forward: Forward) -> tuple[Batch, list[int]]:
        """The batch to train on at ``step`` and the pool rows it holds (in pool order)."""
        start = time.perf_counter()
        candidates = self.pool(step)
        if self.by == "loss":
            losses = torch.cat([self._losses(model, batch, forward) for batch in candidates])
            self.scored_tokens += sum(batch.inputs.numel() for batch in candidates)
            chosen = losses.topk(self.rows).indices.sort().values.tolist()
        else:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            total = self.pool_size * self.rows
            chosen = torch.randperm(total, generator=generator)[: self.rows].sort().values.tolist()
        batch = take_rows(candidates, chosen)
        self.seconds += time.perf_counter() - start
        return batch, chosen

    @staticmethod
    def _losses(model: nn.Module, batch: Batch, forward: Forward) -> torch.Tensor:
        """Mean loss per sequence over its scored tokens, in eval mode without gradients."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                logits = forward(model, batch, None).logits
        finally:
            model.train(was_training)
        return sequence_losses(logits, batch.targets)


def sequence_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each row [B] over its scored positions (0 where none is)."""
    token = F.cross_entropy(
        logits.transpose(1, 2).float(), targets, ignore_index=IGNORE, reduction="none"
    )
    scored = (targets != IGNORE).sum(-1).clamp(min=1)
    return token.sum(-1) / scored


def take_rows(batches: Sequence[Batch], rows: list[int]) -> Batch:
    """Rows ``rows`` of the batches stacked in order, as one fresh batch."""
    index = torch.tensor(rows, dtype=torch.long)
    inputs = torch.cat([b.inputs for b in batches])[index]
    targets = torch.cat([b.targets for b in batches])[index]
    source = None
    if batches[0].source is not None:
        source = torch.cat([b.source for b in batches if b.source is not None])[index]
    return Batch(inputs, targets, fresh=True, source=source)


def scoring_macs(config: ArchConfig, recipe: Recipe, steps: int) -> int:
    """Forward MACs that scoring the pools of the first ``steps`` steps costs: ``pool x
    batch_size`` sequences of each step's length through the whole model (embedding lookups
    aside, the vocabulary layer included). Zero without ``by: loss``."""
    from archsearch.costs import estimate_costs
    from archsearch.costs.convention import CountingConvention

    if recipe.selection is None or recipe.selection.by != "loss":
        return 0
    per_length: dict[int, int] = {}
    total = 0
    for length in seq_lens(recipe)[:steps]:
        if length not in per_length:
            convention = CountingConvention(tokens=length, exclude=("embedding",))
            per_length[length] = estimate_costs(config, convention).macs
        total += per_length[length]
    return total * recipe.selection.pool * recipe.batch_size
