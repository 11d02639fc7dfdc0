"""The region a fidelity measurement compares: distinct feasible configurations whose MACs lie
between ``LOW_FRACTION`` and all of the profile's budget, picked round-robin over families.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from archsearch.config import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.profiles import Profile
from archsearch.space import SearchSpace

LOW_FRACTION = 0.5  # the region a search compares: MACs in [LOW_FRACTION * budget, budget]
MIN_CONFIGS = 4  # fewer cannot give a meaningful rank correlation
MAX_DRAWS = 20_000  # random draws tried before the region is declared too small
MAX_STALE_DRAWS = 2_000  # ... or this many draws in a row that found nothing new


@dataclass(frozen=True)
class Candidate:
    """One sampled configuration inside the region, with its cost and family label."""

    arch: dict[str, Any]
    macs: int
    params: int
    family: str

    @property
    def config(self) -> ArchConfig:
        return ArchConfig.from_dict(self.arch)


def family(config: ArchConfig) -> str:
    """The attention / feed-forward / memory families a configuration uses, as one label."""
    layers = config.layers + config.encoder_layers
    attention = "+".join(sorted({layer.attention for layer in layers}))
    ffn = "+".join(sorted({layer.ffn for layer in layers}))
    return f"attention={attention} ffn={ffn} memory={config.memory}"


def macs_budget(profile: Profile) -> float:
    if "macs" not in profile.budgets:
        raise InputError(
            f"profile '{profile.name}' has no macs budget: fidelity samples near a MAC budget",
            key="--profile",
        )
    return profile.budgets["macs"]


def sample_region(
    space: SearchSpace,
    profile: Profile,
    recipe: Recipe,
    count: int,
    *,
    seed: int = 0,
    low_fraction: float = LOW_FRACTION,
    max_draws: int = MAX_DRAWS,
) -> list[Candidate]:
    """``count`` distinct feasible configurations with MACs in [low_fraction, 1] x budget.

    Drawn at random, then picked round-robin over families (in a random order, a random
    member each time) so that every family the region holds is represented before any is
    repeated. Raises ``InputError`` when the region holds fewer than ``count`` distinct
    configurations after ``max_draws`` draws.
    """
    from archsearch.evaluate.train import check_compatible

    budget = macs_budget(profile)
    low = low_fraction * budget
    rng = random.Random(seed)
    pool: dict[str, Candidate] = {}
    target = 8 * count  # enough to pick from without scanning the whole space
    draws = stale = 0
    while draws < max_draws and stale < MAX_STALE_DRAWS and len(pool) < target:
        draws += 1
        stale += 1
        values = space.sample(rng)
        if space.violations(values):
            continue
        try:
            config = space.to_config(values)
            check_compatible(config, recipe)
            costs = estimate_costs(config, profile)
        except InputError:
            continue
        if profile.over_budget(costs) or costs.macs < low:
            continue
        arch = config.to_dict()
        key = json.dumps(arch, sort_keys=True)
        if key not in pool:
            pool[key] = Candidate(arch, costs.macs, costs.params, family(config))
            stale = 0
    if len(pool) < count:
        raise InputError(
            f"only {len(pool)} distinct feasible configurations with MACs in "
            f"[{low:,.0f}, {budget:,.0f}] found in {draws} draws from space '{space.name}'; "
            f"ask for fewer",
            key="--configs",
        )
    by_family: dict[str, list[Candidate]] = {}
    for candidate in pool.values():
        by_family.setdefault(candidate.family, []).append(candidate)
    families = sorted(by_family)
    rng.shuffle(families)
    chosen: list[Candidate] = []
    while len(chosen) < count:
        for name in families:
            members = by_family[name]
            if members and len(chosen) < count:
                chosen.append(members.pop(rng.randrange(len(members))))
    return sorted(chosen, key=lambda c: c.macs)
