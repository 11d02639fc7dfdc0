"""The runtime model of a search space: parameters, conditions and constraints -> values.

A space names fixed architecture keys, parameters to search (``choice``, ``int``, ``float``),
conditions (``when``) that switch parameters on and off, and constraints that every candidate
must meet. Parameters may be ``per_layer``: one value per block, suggested to Optuna as
``key.L``. A condition or constraint that mentions a per-layer name is evaluated layer by layer.

Sampling is define-by-run: ``suggest`` asks an Optuna trial, ``sample`` asks a
``random.Random`` and ``branches`` walks every branch, all through one ``_draw`` routine over a
small sampler protocol (``archsearch.space.draws``), so which parameters are active can never
differ between them. The YAML parser is ``archsearch.space.parser``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from archsearch.builtins import resolve
from archsearch.config import ENCODER_LAYER_KEYS, ArchConfig, LayerConfig
from archsearch.errors import InputError
from archsearch.expressions import Expression
from archsearch.space.draws import RandomDraws, Sampler, branches
from archsearch.space.params import ENCODER_PREFIX, Param, Rule, count_key_of
from archsearch.space.parser import parse_document
from archsearch.space.satisfiable import check_satisfiable
from archsearch.yamlfile import read_yaml

_LAYER_DEFAULTS = LayerConfig()


class SearchSpace:
    """A validated search space. Build with ``load_space`` or ``SearchSpace.from_dict``."""

    def __init__(
        self,
        *,
        name: str,
        task: str,
        fixed: dict[str, Any],
        params: dict[str, Param],
        constraints: tuple[Expression, ...],
        description: str = "",
        source: str | None = None,
        _rules: tuple[dict[str, Rule], tuple[Rule, ...]] | None = None,
        _layer_names: dict[str, str] | None = None,
    ):
        self.name = name
        self.task = task
        self.fixed = fixed
        self.params = params  # in suggestion order: conditions after the names they read
        self.constraints = constraints
        self.description = description
        self.source = source
        self._conditions, self._constraint_rules = _rules or ({}, ())
        self._layer_names = _layer_names or {}  # per-layer name -> its count key

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> SearchSpace:
        """Validate a parsed YAML document; every problem is an ``InputError`` naming its key."""
        try:
            space = cls(**parse_document(data, source))
            check_satisfiable(space)
        except InputError as exc:
            raise exc.located(source) if source else exc from None
        return space

    def __repr__(self) -> str:
        return f"SearchSpace(name={self.name!r}, task={self.task!r}, params={list(self.params)})"

    # ---- sampling -------------------------------------------------------------------------

    def suggest(self, trial: Sampler) -> dict[str, Any]:
        """Define-by-run sampling with an Optuna trial; returns the flat values dict."""
        return self._draw(trial)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """The same sampling as ``suggest``, driven by ``rng`` instead of Optuna."""
        return self._draw(RandomDraws(rng))

    def violations(self, values: Mapping[str, Any]) -> list[str]:
        """Texts of the constraints that ``values`` (from ``suggest``/``sample``) break."""
        return [self.constraints[i].text for i in self._broken(values)]

    def branches(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """Every configuration, as (values, Optuna parameters), one per branch of the draws.

        Stepped floats take Optuna's own values (``low + k * step``, clipped to ``high``); a
        continuous float raises ``ValueError``: check ``Param.size`` first.
        """
        return branches(self._draw)

    def to_config(self, values: Mapping[str, Any]) -> ArchConfig:
        """The architecture for ``values``; raises ``InputError`` if it is not a valid one."""
        return ArchConfig.from_dict({**values, "task": self.task})

    def _draw(self, sampler: Sampler) -> dict[str, Any]:
        values: dict[str, Any] = {
            k: (list(v) if isinstance(v, list) else v) for k, v in self.fixed.items()
        }
        active = self._fixed_activity()
        for param in self.params.values():
            condition = self._conditions.get(param.name)
            if param.per_layer:
                count = values[count_key_of(param.name)]
                mask = [self._holds(condition, values, active, layer) for layer in range(count)]
                default = _layer_default(param.name)
                drawn = [
                    param.draw(sampler, f"{param.name}.{layer}") if on else default
                    for layer, on in enumerate(mask)
                ]
                active[param.name] = mask
                if any(mask):
                    values[param.name] = drawn
            else:
                active[param.name] = self._holds(condition, values, active, None)
                if active[param.name]:
                    values[param.name] = param.draw(sampler, param.name)
        self._fill_encoder_defaults(values)
        return values

    def _fixed_activity(self) -> dict[str, Any]:
        return {
            k: ([True] * len(v) if isinstance(v, list) else True) for k, v in self.fixed.items()
        }

    def _activity(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Which parameters (and on which layers) ``values`` has active, as ``_draw`` decided."""
        active = self._fixed_activity()
        for param in self.params.values():
            condition = self._conditions.get(param.name)
            present = param.name in values
            if param.per_layer:
                count = values.get(count_key_of(param.name), 0)
                active[param.name] = [
                    present and self._holds(condition, values, active, layer)
                    for layer in range(count)
                ]
            else:
                active[param.name] = present and self._holds(condition, values, active, None)
        return active

    def _fill_encoder_defaults(self, values: dict[str, Any]) -> None:
        """An encoder key switched off everywhere still must not inherit a decoder list."""
        if self.task != "seq2seq":
            return
        for key in ENCODER_LAYER_KEYS:
            encoder_key = ENCODER_PREFIX + key
            if isinstance(values.get(key), list) and encoder_key not in values:
                values[encoder_key] = getattr(_LAYER_DEFAULTS, key)

    def _broken(self, values: Mapping[str, Any]) -> list[int]:
        active = self._activity(values)
        broken = []
        for index, rule in enumerate(self._constraint_rules):
            layers = [None] if rule.scope is None else range(values.get(rule.scope, 0))
            for layer in layers:
                env = self._env(rule, values, active, layer)
                if env is not None and not self._truth(rule, env):
                    broken.append(index)
                    break
        return broken

    def _holds(
        self, rule: Rule | None, values: Mapping[str, Any], active: dict, layer: int | None
    ) -> bool:
        """A condition is true only if every name it reads is active (on this layer)."""
        if rule is None:
            return True
        env = self._env(rule, values, active, layer)
        return env is not None and self._truth(rule, env)

    def _env(
        self, rule: Rule, values: Mapping[str, Any], active: dict, layer: int | None
    ) -> dict[str, Any] | None:
        """The values a rule sees on ``layer``; None when one of its names is inactive there."""
        env = {}
        for name in rule.expression.names:
            on = active.get(name, False)
            if name in self._layer_names:
                if layer is None or not on[layer]:
                    return None
                env[name] = values[name][layer]
            else:
                if not on:
                    return None
                env[name] = values[name]
        return env

    def _truth(self, rule: Rule, env: dict[str, Any]) -> bool:
        try:
            result = rule.expression.evaluate(env)
        except InputError as exc:
            exc.key = rule.key
            raise exc.located(self.source) if self.source else exc from None
        if not isinstance(result, bool):
            raise InputError(
                f"must be true or false, got {result!r} for {env}", key=rule.key, source=self.source
            )
        return result


def _layer_default(key: str) -> Any:
    return getattr(_LAYER_DEFAULTS, key.removeprefix(ENCODER_PREFIX))


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A built-in space by name (``tiny_lm``) or a user's YAML file by path."""
    path = resolve("search_spaces", name_or_path, option="--space")
    return SearchSpace.from_dict(read_yaml(path), source=str(path))
