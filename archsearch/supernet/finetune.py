"""The second scoring stage: a candidate's inherited weights fine-tuned briefly, then scored.

Shared weights serve some families' blocks badly: the supernet rates LSRA 0.2 to 0.7 bpb worse
than training does, more the more channels its convolution branch has. A few dozen steps from
the inherited weights repair most of that (``benchmarks/supernet_finetune.py``), at about a tenth
of a brief from-scratch training, so a shortlist of the raw-scored candidates is re-scored so.

Every candidate gets the same fine-tuning: the recipe's ``finetune_steps`` training batches that
follow the supernet's own, AdamW at the constant ``finetune_lr`` without weight decay, the
recipe's gradient clipping, random draws seeded by the recipe's seed; then the validation of
``scoring.inherited_bpb``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from archsearch.config import ArchConfig
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.batch import IGNORE
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import check_compatible, validate
from archsearch.seeding import seeded
from archsearch.supernet.model import Supernet
from archsearch.supernet.scoring import (
    loaded_supernet,
    scoring_batches,
    scoring_recipe,
    training_batches,
)
from archsearch.supernet.training import schedule_recipe


def finetuned_bpb(supernet: Supernet, config: ArchConfig, recipe: Recipe) -> float:
    """Validation bpb of ``config``'s sub-network after the recipe's fine-tuning."""
    settings = recipe.supernet
    assert settings is not None and settings.finetune_steps > 0
    check_compatible(config, recipe)
    with seeded(recipe.seed):  # training-mode draws (routing noise, random features)
        return _finetuned(supernet.extract(config), recipe)


def _finetuned(model: torch.nn.Module, recipe: Recipe) -> float:
    settings = recipe.supernet
    assert settings is not None
    parameters = list(model.parameters())
    optimizer = torch.optim.AdamW(
        parameters, lr=settings.finetune_lr, betas=recipe.optimizer.betas, weight_decay=0.0
    )
    batches = training_batches(recipe)
    first = schedule_recipe(recipe).steps  # the batches after the supernet's own
    model.train()
    for step in range(first, first + settings.finetune_steps):
        batch = batches.train(step)
        output = model(batch.inputs)
        logits = output.logits.reshape(-1, output.logits.shape[-1]).float()
        loss = F.cross_entropy(logits, batch.targets.reshape(-1), ignore_index=IGNORE)
        total = loss + output.aux_loss
        if not torch.isfinite(total):
            raise CandidateFailed(f"fine-tuning loss became {total.item()} at step {step - first}")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
        optimizer.step()
    return validate(model, scoring_batches(recipe), scoring_recipe(recipe))["val_bpb"]


def finetuned_from_file(path: Path, config: ArchConfig, recipe: Recipe, threads: int = 1) -> float:
    """``finetuned_bpb`` with the supernet saved at ``path`` (loaded once per process)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return finetuned_bpb(loaded_supernet(path), config, recipe)
    finally:
        torch.set_num_threads(previous)
