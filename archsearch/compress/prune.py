"""Pruning at a given sparsity, and the brief recovery fine-tune that follows it.

Each prunable linear (``linears.prunable``) loses the same fraction of its weights:

- ``magnitude``: the individual weights of smallest absolute value (Han et al.'s pruning);
- ``structured``: whole output units (rows of the weight) of smallest L2 norm, the kind a
  runtime could drop from the matrix.

Weights are set to zero in place and stay zero while fine-tuning: a gradient hook multiplies
each pruned weight's gradient by its mask, so AdamW's moments for those weights stay zero and
their update (zero over epsilon) and decay (a multiple of zero) leave them at exactly zero. The
fine-tune is the evaluator's own training loop (``evaluate.train.fit``) with the recipe's
optimizer and schedule on a shorter budget, peaking at the learning rate training ended at.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from archsearch.compress.linears import prunable
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.seeding import seeded

METHODS = ("magnitude", "structured")


@dataclass(frozen=True)
class Pruning:
    method: str
    sparsity: float  # fraction of each layer's weights (magnitude) or rows (structured) removed

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(
                f"must be one of {', '.join(METHODS)}, got {self.method!r}", key="--prune"
            )
        if not 0.0 < self.sparsity < 1.0:
            raise InputError(
                f"must be between 0 and 1 (exclusive), got {self.sparsity}", key="--sparsity"
            )


def masks_for(model: nn.Module, pruning: Pruning) -> dict[str, torch.Tensor]:
    """Module name -> boolean mask (True: kept) of its weight."""
    modules = dict(model.named_modules())
    out = {}
    for name in prunable(model):
        weight = modules[name].weight.detach()
        mask = torch.ones_like(weight, dtype=torch.bool)
        if pruning.method == "magnitude":
            drop = round(pruning.sparsity * weight.numel())
            order = weight.abs().flatten().argsort(stable=True)
            mask.view(-1)[order[:drop]] = False
        else:
            drop = round(pruning.sparsity * weight.shape[0])
            order = weight.norm(dim=1).argsort(stable=True)
            mask[order[:drop]] = False
        out[name] = mask
    return out


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, mask in masks.items():
            modules[name].weight.mul_(mask)


def prune(model: nn.Module, pruning: Pruning) -> dict[str, torch.Tensor]:
    """Zero ``model``'s smallest weights in place; returns the masks."""
    masks = masks_for(model, pruning)
    apply_masks(model, masks)
    return masks


def finetune(
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    recipe: Recipe,
    tokens: int,
    lr: float | None = None,
) -> list[dict[str, Any]]:
    """Recovery fine-tune of a pruned model for ``tokens`` (whole steps, at least one) with the
    recipe's loop, optimizer and schedule shape; pruned weights stay zero. The peak learning
    rate is ``lr``, by default the one the recipe's schedule ends at (lr x final_lr_ratio): a
    trained model fine-tuned at the recipe's full peak got worse (a brief run here lost 0.01-0.07
    bpb unpruned). Returns the validation point at the end."""
    steps = max(1, tokens // recipe.tokens_per_step)
    if lr is None:
        lr = recipe.optimizer.lr * recipe.schedule.final_lr_ratio
    brief = recipe.replace(
        token_budget=steps * recipe.tokens_per_step,
        eval_points=1,
        optimizer=dataclasses.replace(recipe.optimizer, lr=lr),
    )
    from archsearch.evaluate.train import fit

    modules = dict(model.named_modules())
    handles = [
        modules[name].weight.register_hook(lambda grad, mask=mask: grad * mask)
        for name, mask in masks.items()
    ]
    try:
        with seeded(recipe.seed):
            curve = fit(model, brief)
    finally:
        for handle in handles:
            handle.remove()
    model.eval()
    for name, mask in masks.items():  # the hooks' promise, checked
        if bool((modules[name].weight.detach()[~mask] != 0).any()):
            raise RuntimeError(f"pruned weights of {name} moved during the fine-tune")
    return curve


def nonzero_parameters(model: nn.Module) -> int:
    """Parameters (each shared one once) that are not zero, int8 weights included."""
    from archsearch.compress.quantize import int8_modules, int8_weight

    count = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    for module in int8_modules(model).values():
        values, _, zero_point = int8_weight(module)
        count += int((values != zero_point).sum())
    return count
