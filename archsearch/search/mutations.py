"""Mutations of a candidate: its neighbours in the space, one or two decisions changed.

A supernet ranks candidates far apart fairly but not the small differences between neighbours
(on ``oneshot_lm`` its two best-scored mutations of the Lite Transformer were both worse than
it at 8x), while brief training does tell neighbours apart. So the refine stage
(``refine.py``) trains mutations of the best trained model, as the Evolved Transformer's search
grew from the Transformer. A mutation redraws ``changes`` of the decisions the parent's own
draw made (a layer's family, its split, the depth, ...): a decision the change switches on (a
new family's window, a new layer's width) is drawn fresh, every other one is the parent's.

Hand-designed models are uniform stacks, and one layer changed moves them little, so
``stack_neighbours`` lists the other kind of neighbour: one parameter set to each other value
of its domain in every layer at once (every layer's FFN gated, every layer's heads 8, depth 4),
what it switches on drawn once for the whole stack.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from archsearch.profiles import Profile
from archsearch.search.verdict import judge
from archsearch.space import SearchSpace
from archsearch.space.draws import RandomDraws

CHANGES = (1, 2)  # decisions a mutation redraws, drawn uniformly
ATTEMPTS = 50  # draws per wanted mutation before giving up (a space with few neighbours)


class _Redraw(RandomDraws):
    """The parent's value of every decision but those in ``redraw`` (and those it lacks);
    records each decision's name and value, the Optuna parameters of the result."""

    def __init__(
        self,
        rng: random.Random,
        parent: Mapping[str, Any],
        redraw: Collection[str],
        stack: tuple[str, Any] | None = None,
    ):
        super().__init__(rng)
        self.parent, self.redraw, self.stack = parent, redraw, stack
        self.params: dict[str, Any] = {}
        self.last: dict[str, Any] = {}  # stack mode: each parameter's latest value

    def _take(self, name: str, fits: Callable[[Any], bool], fresh: Callable[[], Any]) -> Any:
        """The parent's value of ``name`` where kept and still in the domain, else ``fresh()``
        (only then: the draws of the other decisions stay as they were); recorded.

        In stack mode (``stack`` = (parameter, value)), that parameter takes that value in
        every layer, and a decision the parent lacks (a new layer's, one the change switches
        on) takes the same parameter's previous layer's value, so the stack stays uniform."""
        group = parameter_of(name)
        if self.stack is not None and group == self.stack[0] and fits(self.stack[1]):
            value = self.stack[1]
        elif name in self.parent and name not in self.redraw and fits(self.parent[name]):
            value = self.parent[name]
        elif self.stack is not None and group in self.last and fits(self.last[group]):
            value = self.last[group]
        else:
            value = fresh()
        self.params[name] = self.last[group] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        def fresh() -> Any:
            return RandomDraws.suggest_categorical(self, name, choices)

        return self._take(name, lambda value: value in choices, fresh)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        def fresh() -> int:
            return RandomDraws.suggest_int(self, name, low, high, step=step, log=log)

        return self._take(name, lambda value: low <= value <= high, fresh)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        def fresh() -> float:
            return RandomDraws.suggest_float(self, name, low, high, step=step, log=log)

        return self._take(name, lambda value: low <= value <= high, fresh)


def _replay(space: SearchSpace, params: Mapping[str, Any]) -> tuple[_Redraw, dict[str, Any]]:
    """The space's draw of ``params``: the draw (its decisions) and the values it gives."""
    draw = _Redraw(random.Random(0), params, ())
    return draw, space.suggest(draw)


def decisions(space: SearchSpace, params: Mapping[str, Any]) -> list[str]:
    """The Optuna parameter names the space's draw of ``params`` asks for, in draw order."""
    return list(_replay(space, params)[0].params)


def values_of(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """The space values of a trial's Optuna parameters (``params`` complete, as a trial's are)."""
    return _replay(space, params)[1]


def parameter_of(name: str) -> str:
    """The space parameter of a decision: ``ffn.3`` (layer 3's) -> ``ffn``, ``n_layers`` ->
    ``n_layers``."""
    head, _, tail = name.rpartition(".")
    return head if head and tail.isdigit() else name


def arch_key(values: Mapping[str, Any]) -> str:
    """One text per architecture (its space values), to tell repeats apart."""
    return json.dumps(values, sort_keys=True, default=str)


def mutations(
    space: SearchSpace,
    profile: Profile,
    parent: Mapping[str, Any],
    count: int,
    rng: random.Random,
    taken: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Up to ``count`` distinct mutations of ``parent`` (Optuna parameters), each valid and
    within the profile's budgets, none whose architecture is in ``taken`` (``arch_key`` texts)
    or is the parent's own. Fewer when the space has fewer such neighbours."""
    replayed, parent_values = _replay(space, parent)
    names = list(replayed.params)
    seen = set(taken) | {arch_key(parent_values)}
    found: list[dict[str, Any]] = []
    for _ in range(ATTEMPTS * count):
        if len(found) == count or not names:
            break
        redraw = rng.sample(names, min(rng.choice(CHANGES), len(names)))
        draw = _Redraw(rng, parent, redraw)
        values = space.suggest(draw)
        key = arch_key(values)
        if key in seen or not judge(space, profile, values).trainable:
            continue
        seen.add(key)
        found.append(draw.params)
    return found


def stack_neighbours(
    space: SearchSpace,
    profile: Profile,
    parent: Mapping[str, Any],
    rng: random.Random,
    taken: Collection[str] = (),
    parameters: Collection[str] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Every neighbour of ``parent`` (Optuna parameters) that sets one parameter its draw asks
    for (of ``parameters``, where given) to another value in every layer (a global one: to
    another value), in draw order, as (that parameter, the neighbour's parameters); each
    valid, within the profile's budgets and not in ``taken`` (``arch_key`` texts). What the
    change switches on is drawn with ``rng``, once for the whole stack."""
    replayed, parent_values = _replay(space, parent)
    seen = set(taken) | {arch_key(parent_values)}
    found: list[tuple[str, dict[str, Any]]] = []
    for name in dict.fromkeys(parameter_of(n) for n in replayed.params):
        if parameters is not None and name not in parameters:
            continue
        param = space.params[name]
        for value in [] if math.isinf(param.size) else param.values():  # continuous: unlisted
            draw = _Redraw(rng, parent, (), stack=(name, value))
            values = space.suggest(draw)
            key = arch_key(values)
            if key in seen or not judge(space, profile, values).trainable:
                continue
            seen.add(key)
            found.append((name, draw.params))
    return found
