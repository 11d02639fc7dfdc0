"""Judge a sampled candidate before spending anything on it: valid, constrained, in budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archsearch.config import ArchConfig
from archsearch.costs import Costs, estimate_costs
from archsearch.errors import InputError
from archsearch.profiles import Profile
from archsearch.space import SearchSpace


@dataclass
class Verdict:
    """What the driver knows about a candidate from its description and analytic costs."""

    values: dict[str, Any]
    config: ArchConfig | None = None
    costs: Costs | None = None
    invalid: list[str] = field(default_factory=list)  # cannot be built / breaks the space
    over_budget: list[str] = field(default_factory=list)  # builds, but exceeds the profile

    @property
    def trainable(self) -> bool:
        return not self.invalid and not self.over_budget

    @property
    def reason(self) -> str:
        return "; ".join(self.invalid + self.over_budget)


def judge(space: SearchSpace, profile: Profile, values: dict[str, Any]) -> Verdict:
    verdict = Verdict(values=values)
    verdict.invalid += [f"breaks constraint: {text}" for text in space.violations(values)]
    if verdict.invalid:
        return verdict
    try:
        verdict.config = space.to_config(values)
        verdict.costs = estimate_costs(verdict.config, profile)
    except InputError as exc:
        verdict.invalid.append(f"invalid architecture: {exc}")
        return verdict
    verdict.over_budget = profile.over_budget(verdict.costs, verdict.config)
    return verdict
