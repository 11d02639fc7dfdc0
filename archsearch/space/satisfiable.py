"""Load-time check that a space's constraints can be met, naming the one to blame.

A space small enough is enumerated exhaustively; a larger one is sampled with a fixed seed, so
loading the same file always gives one answer, in well under a second.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from archsearch.errors import InputError

if TYPE_CHECKING:
    from archsearch.space.model import SearchSpace

ENUMERATION_LIMIT = 4096  # spaces with at most this many configurations are checked exhaustively
RANDOM_CHECKS = 2000  # random samples tried on larger spaces before calling constraints impossible
# ... fewer when each sample draws many values (hundreds of layers): about 0.2 s of checking
# here, so loading stays well under a second whatever the layer counts.
CHECK_DRAWS = 200_000


def check_satisfiable(space: SearchSpace) -> None:
    """Reject constraints that no configuration meets, naming the one to blame if it can.

    Without constraints the first draw succeeds; it still runs every condition once.
    """
    exhaustive = size_bound(space) <= ENUMERATION_LIMIT
    if exhaustive:
        candidates: Iterator[dict[str, Any]] = (values for values, _ in space.branches())
    else:
        rng = random.Random(0)  # fixed seed: loading the same file always gives one answer
        samples = max(20, min(RANDOM_CHECKS, CHECK_DRAWS // draws_bound(space)))
        candidates = (space.sample(rng) for _ in range(samples))
    ever_held = [False] * len(space._constraint_rules)
    seen = 0
    for values in candidates:
        seen += 1
        broken = set(space._broken(values))
        if not broken:
            return
        for index in range(len(ever_held)):
            ever_held[index] = ever_held[index] or index not in broken
    if exhaustive:
        how = f"checked all {seen} configurations"
    else:
        how = f"checked {seen} random samples; too many configurations to enumerate"
    for index, held in enumerate(ever_held):
        if not held:
            raise InputError(
                f"no configuration satisfies this constraint ({how})",
                key=f"constraints[{index}]",
            )
    raise InputError(
        f"no configuration satisfies all constraints together ({how})", key="constraints"
    )


def size_bound(space: SearchSpace) -> float:
    """An upper bound on the number of configurations (conditions only remove some), or
    infinity past ENUMERATION_LIMIT. Multiplied out factor by factor in integers and
    stopped at the limit, since a per-layer size to the power of the layer count overflows
    a float."""
    total = 1
    for param in space.params.values():
        if math.isinf(param.size):
            return math.inf
        repeats = _max_count(space, param.count_key or "n_layers") if param.per_layer else 1
        for _ in range(repeats):
            total *= int(param.size)
            if total > ENUMERATION_LIMIT:
                return math.inf
    return total


def draws_bound(space: SearchSpace) -> int:
    """The most values one sample draws (each per-layer parameter once per layer)."""
    return sum(
        _max_count(space, p.count_key or "n_layers") if p.per_layer else 1
        for p in space.params.values()
    )


def _max_count(space: SearchSpace, key: str) -> int:
    if key in space.fixed:
        return space.fixed[key]
    param = space.params[key]
    return int(param.high) if param.kind == "int" else max(param.choices)
