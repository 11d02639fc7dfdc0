"""Sandwich training of a supernet: each step trains the largest, the smallest and a few random
sub-networks on the same batch (BigNAS / Once-for-All), so the shared weights serve every size.

In a space that switches families per layer there is no one largest model: each step's largest
is the space's deepest and widest, and its smallest the shallowest and narrowest, each with its
families drawn at random, so every family is trained at both ends of the size range (a fixed
pair trained two family mixes at the ends, and inherited weights then ranked small models of
other families above every large one). ``ends`` (a fixed largest and smallest) stand in where a
space has no valid extreme configuration.

With ``distill > 0`` the other sub-networks also learn from the largest one's predictions of the
same step (in-place distillation): their loss adds ``distill`` x the KL divergence to its
(detached) distribution. Every draw is seeded by the step, so a resumed run takes exactly the
steps an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from archsearch.config import ArchConfig
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.data import IGNORE, make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import learning_rate
from archsearch.space import SearchSpace
from archsearch.supernet.model import (
    Supernet,
    covering_configs,
    extreme_config,
    sample_config,
)


@dataclass
class SupernetState:
    """What the next step depends on besides the weights (a checkpoint adds this)."""

    step: int = 0
    optimizer: dict[str, Any] | None = None
    losses: list[float] = dataclasses.field(default_factory=list)  # largest's loss per step


def schedule_recipe(recipe: Recipe) -> Recipe:
    """The recipe with the supernet's token budget, for the learning-rate schedule."""
    assert recipe.supernet is not None
    return recipe.replace(token_budget=recipe.supernet.token_budget, eval_points=1)


def step_configs(
    space: SearchSpace,
    rng: random.Random,
    random_subnets: int,
    ends: Sequence[ArchConfig],
    cover_families: bool,
) -> list[ArchConfig]:
    """One step's sub-networks: the largest, the smallest, then ``random_subnets`` random ones;
    with ``cover_families`` their per-layer families dealt so that each step trains as many
    families of each layer as it has sub-networks (``covering_configs``)."""
    count = 2 + random_subnets
    dealt = covering_configs(space, rng, count) if cover_families else [None] * count
    largest = dealt[0] or extreme_config(space, rng, largest=True) or ends[0]
    smallest = dealt[1] or extreme_config(space, rng, largest=False) or ends[1]
    randoms = [config or sample_config(space, rng) for config in dealt[2:]]
    return [largest, smallest, *randoms]


def train_supernet(
    supernet: Supernet,
    space: SearchSpace,
    recipe: Recipe,
    ends: Sequence[ArchConfig],
    *,
    resume: SupernetState | None = None,
    checkpoint: Callable[[SupernetState], None] | None = None,
    checkpoint_every: int = 50,
    progress: Callable[[int, int, float], None] | None = None,
) -> SupernetState:
    """Train ``supernet`` for the recipe's supernet budget; ``ends`` are a largest and a
    smallest configuration, used where the space has no valid extreme one."""
    settings = recipe.supernet
    assert settings is not None
    plan = schedule_recipe(recipe)
    batches = make_batches(recipe)
    parameters = list(supernet.parameters())
    # No weight decay: AdamW's decay would shrink every row a step's sub-networks did not use
    # toward zero, step after step; the sub-networks' own training keeps the recipe's decay.
    optimizer = torch.optim.AdamW(
        parameters, lr=recipe.optimizer.lr, betas=recipe.optimizer.betas, weight_decay=0.0
    )
    state = SupernetState() if resume is None else resume
    if state.optimizer is not None:
        optimizer.load_state_dict(state.optimizer)
    supernet.train()
    for step in range(state.step, plan.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(plan, step)
        batch = batches.train(step)
        rng = random.Random(f"{recipe.seed}:{step}")
        configs = step_configs(space, rng, settings.random_subnets, ends, settings.cover_families)
        optimizer.zero_grad(set_to_none=True)
        teacher: torch.Tensor | None = None
        first_loss = 0.0
        for index, config in enumerate(configs):
            output = supernet(config, batch.inputs)
            logits = output.logits.reshape(-1, output.logits.shape[-1]).float()
            targets = batch.targets.reshape(-1)
            loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
            if index == 0:
                first_loss = loss.item()
                if settings.distill > 0:
                    teacher = F.softmax(logits.detach(), dim=-1)
            elif teacher is not None:
                scored = targets != IGNORE
                kl = F.kl_div(
                    F.log_softmax(logits[scored], dim=-1), teacher[scored], reduction="batchmean"
                )
                loss = loss + settings.distill * kl
            total = (loss + output.aux_loss) / len(configs)
            if not torch.isfinite(total):
                raise CandidateFailed(f"supernet loss became {total.item()} at step {step + 1}")
            total.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
        if not torch.isfinite(norm):
            raise CandidateFailed(f"supernet gradient norm became {norm.item()} at {step + 1}")
        optimizer.step()
        state.step = step + 1
        state.losses.append(first_loss)
        if progress is not None:
            progress(state.step, plan.steps, first_loss)
        if checkpoint is not None and (
            state.step % checkpoint_every == 0 or state.step == plan.steps
        ):
            state.optimizer = optimizer.state_dict()
            checkpoint(state)
    state.optimizer = optimizer.state_dict()
    return state
