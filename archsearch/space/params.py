"""The parts of a search space: a searched parameter, a compiled rule, and layer-key naming.

Shared by the parser, which builds them from YAML, and the runtime model, which draws with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from archsearch.expressions import Expression
from archsearch.space.draws import Sampler, branches

COUNT_KEYS = ("n_layers", "n_encoder_layers")
ENCODER_PREFIX = "encoder_"


@dataclass(frozen=True)
class Param:
    """One searched key: its kind and domain, its condition, whether it varies per layer."""

    name: str
    kind: str  # choice | int | float
    choices: tuple[Any, ...] = ()
    low: float = 0
    high: float = 0
    step: float | None = None
    log: bool = False
    when: Expression | None = None
    per_layer: bool = False

    @property
    def count_key(self) -> str | None:
        """The layer count a per-layer parameter follows (encoder keys follow the encoder)."""
        if not self.per_layer:
            return None
        return "n_encoder_layers" if self.name.startswith(ENCODER_PREFIX) else "n_layers"

    @property
    def size(self) -> float:
        """How many values one draw can take (infinite for a continuous float)."""
        if self.kind == "choice":
            return len(self.choices)
        if self.kind == "int":
            return (int(self.high) - int(self.low)) // int(self.step or 1) + 1
        if self.step is None:
            return math.inf if self.high > self.low else 1
        return round((self.high - self.low) / self.step) + 1

    def values(self) -> list[Any]:
        """Every value one draw can take, in draw order (a stepped float's as Optuna gives
        them); raises ``ValueError`` for a continuous float (check ``size`` first)."""
        return [found["v"] for found, _ in branches(lambda s: {"v": self.draw(s, self.name)})]

    def draw(self, sampler: Sampler, name: str) -> Any:
        if self.kind == "choice":
            return sampler.suggest_categorical(name, self.choices)
        if self.kind == "int":
            return sampler.suggest_int(
                name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return sampler.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Rule:
    """A compiled condition or constraint with where it came from and which layers it spans."""

    expression: Expression
    key: str  # e.g. params.window.when or constraints[0]
    scope: str | None  # the count key when it reads per-layer names, else None


def count_key_of(key: str) -> str:
    """The layer count a per-layer key follows: encoder keys follow the encoder."""
    return "n_encoder_layers" if key.startswith(ENCODER_PREFIX) else "n_layers"
