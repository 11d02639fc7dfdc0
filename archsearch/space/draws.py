"""Sources of values for ``SearchSpace._draw``: an Optuna trial, a ``random.Random``, or a walk
over every branch.

``BranchWalker`` is the one enumerator of a space: the load-time satisfiability check and the
grid sampler both walk a space with it, so they see the same configurations with the same
values. A stepped float takes the values Optuna itself gives (``low + k * step``, clipped to
``high``), so a grid's value is one an Optuna trial can store and compare.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol


class Sampler(Protocol):
    """What ``_draw`` needs from a source of values; ``optuna.Trial`` is one."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...


class RandomDraws:
    """Uniform (or log-uniform) draws from a ``random.Random``, like Optuna's RandomSampler."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[self.rng.randrange(len(choices))]

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if log:
            value = math.exp(self.rng.uniform(math.log(low - 0.5), math.log(high + 0.5)))
            return min(high, max(low, round(value)))
        return low + step * self.rng.randint(0, (high - low) // step)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if step is not None:
            return min(high, low + step * self.rng.randint(0, round((high - low) / step)))
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


class BranchWalker:
    """Follows ``path`` ([index, size] per decision), extending it with index 0 at new ones.

    ``params`` records what was drawn under Optuna's parameter names.
    """

    def __init__(self, path: list[list[int]]):
        self.path = path
        self.position = 0
        self.params: dict[str, Any] = {}

    def _pick(self, name: str, options: Sequence[Any]) -> Any:
        if self.position == len(self.path):
            self.path.append([0, len(options)])
        value = options[self.path[self.position][0]]
        self.position += 1
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(name, list(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._pick(name, range(low, high + 1, step))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if step is None:
            if high > low:
                raise ValueError(f"parameter '{name}' is continuous: it has no branches")
            self.params[name] = low
            return low
        count = round((high - low) / step) + 1
        return self._pick(name, [min(high, low + k * step) for k in range(count)])


def branches(
    draw: Callable[[Sampler], dict[str, Any]],
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (values, parameters) ``draw`` can return, by replaying it along each branch."""
    path: list[list[int]] = []
    while True:
        walker = BranchWalker(path)
        values = draw(walker)
        yield values, walker.params
        while path and path[-1][0] + 1 >= path[-1][1]:
            path.pop()
        if not path:
            return
        path[-1][0] += 1
