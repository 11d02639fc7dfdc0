"""The search-space language: a YAML file -> parameters, conditions, constraints -> ArchConfig.

A space names fixed architecture keys, parameters to search (``choice``, ``int``, ``float``),
conditions (``when``) that switch parameters on and off, and constraints that every candidate
must meet. Parameters may be ``per_layer``: one value per block, suggested to Optuna as
``key.L``. A condition or constraint that mentions a per-layer name is evaluated layer by layer.

Sampling is define-by-run: ``suggest`` asks an Optuna trial and ``sample`` asks a
``random.Random``, both through one ``_draw`` routine over a small sampler protocol, so which
parameters are active can never differ between the two.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from archsearch.builtins import resolve
from archsearch.checks import MAX_FLOAT
from archsearch.config import (
    ACTIVATIONS,
    ATTENTION_KINDS,
    COMPRESS_FNS,
    CONV_KINDS,
    DECODER_ONLY_KEYS,
    ENCODER_LAYER_KEYS,
    FFN_KINDS,
    LAYER_KEYS,
    MAX_LAYERS,
    MEMORY_KINDS,
    NORMS,
    TASKS,
    ArchConfig,
    LayerConfig,
)
from archsearch.errors import InputError, yaml_key
from archsearch.expressions import Expression, compile_expression
from archsearch.yamlfile import read_yaml

ENUMERATION_LIMIT = 4096  # spaces with at most this many configurations are checked exhaustively
MAX_STEPS = 10**9  # values of one stepped float range: more is a typo (or overflows)
MAX_INT = 2**53  # Optuna stores parameter values as floats: larger integers would not survive
RANDOM_CHECKS = 2000  # random samples tried on larger spaces before calling constraints impossible
# ... fewer when each sample draws many values (hundreds of layers): about 0.2 s of checking
# here, so loading stays well under a second whatever the layer counts.
CHECK_DRAWS = 200_000

TOP_LEVEL_KEYS = ("name", "description", "task", "fixed", "params", "constraints")
KINDS = ("choice", "int", "float")
_OPTIONS = {"choice": (), "int": ("step", "log"), "float": ("step", "log")}
_COMMON_OPTIONS = ("when", "per_layer")
COUNT_KEYS = ("n_layers", "n_encoder_layers")
ENCODER_PREFIX = "encoder_"

_GLOBAL_KEYS = tuple(
    f.name for f in fields(ArchConfig) if f.name not in ("layers", "encoder_layers", "task")
)
_ENCODER_KEYS = tuple(ENCODER_PREFIX + key for key in ENCODER_LAYER_KEYS)
ARCH_KEYS = frozenset(_GLOBAL_KEYS + COUNT_KEYS + LAYER_KEYS + _ENCODER_KEYS)
_ENUMERATED = {
    "attention": ATTENTION_KINDS,
    "ffn": FFN_KINDS,
    "memory": MEMORY_KINDS,
    "conv_type": CONV_KINDS,
    "activation": ACTIVATIONS,
    "compress_fn": COMPRESS_FNS,
    "norm": NORMS,
}
_LAYER_DEFAULTS = LayerConfig()
_SCALAR_TYPES = (str, int, float, bool, type(None))


class Sampler(Protocol):
    """What ``_draw`` needs from a source of values; ``optuna.Trial`` is one."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...


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

    def draw(self, sampler: Sampler, name: str) -> Any:
        if self.kind == "choice":
            return sampler.suggest_categorical(name, self.choices)
        if self.kind == "int":
            return sampler.suggest_int(
                name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return sampler.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class _Rule:
    """A compiled condition or constraint with where it came from and which layers it spans."""

    expression: Expression
    key: str  # e.g. params.window.when or constraints[0]
    scope: str | None  # the count key when it reads per-layer names, else None


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
        _rules: tuple[dict[str, _Rule], tuple[_Rule, ...]] | None = None,
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
            space = _Parser(data, source).parse()
            space._check_satisfiable()
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
                count = values[_count_key_of(param.name)]
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
                count = values.get(_count_key_of(param.name), 0)
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
        self, rule: _Rule | None, values: Mapping[str, Any], active: dict, layer: int | None
    ) -> bool:
        """A condition is true only if every name it reads is active (on this layer)."""
        if rule is None:
            return True
        env = self._env(rule, values, active, layer)
        return env is not None and self._truth(rule, env)

    def _env(
        self, rule: _Rule, values: Mapping[str, Any], active: dict, layer: int | None
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

    def _truth(self, rule: _Rule, env: dict[str, Any]) -> bool:
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

    # ---- satisfiability -------------------------------------------------------------------

    def _check_satisfiable(self) -> None:
        """Reject constraints that no configuration meets, naming the one to blame if it can.

        Without constraints the first draw succeeds; it still runs every condition once.
        """
        exhaustive = self._size_bound() <= ENUMERATION_LIMIT
        if exhaustive:
            candidates: Iterator[dict[str, Any]] = self._enumerate()
        else:
            rng = random.Random(0)  # fixed seed: loading the same file always gives one answer
            samples = max(20, min(RANDOM_CHECKS, CHECK_DRAWS // self._draws_bound()))
            candidates = (self.sample(rng) for _ in range(samples))
        ever_held = [False] * len(self._constraint_rules)
        seen = 0
        for values in candidates:
            seen += 1
            broken = set(self._broken(values))
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

    def _size_bound(self) -> float:
        """An upper bound on the number of configurations (conditions only remove some), or
        infinity past ENUMERATION_LIMIT. Multiplied out factor by factor in integers and
        stopped at the limit, since a per-layer size to the power of the layer count overflows
        a float."""
        total = 1
        for param in self.params.values():
            if math.isinf(param.size):
                return math.inf
            repeats = self._max_count(param.count_key or "n_layers") if param.per_layer else 1
            for _ in range(repeats):
                total *= int(param.size)
                if total > ENUMERATION_LIMIT:
                    return math.inf
        return total

    def _draws_bound(self) -> int:
        """The most values one sample draws (each per-layer parameter once per layer)."""
        return sum(
            self._max_count(p.count_key or "n_layers") if p.per_layer else 1
            for p in self.params.values()
        )

    def _max_count(self, key: str) -> int:
        if key in self.fixed:
            return self.fixed[key]
        param = self.params[key]
        return int(param.high) if param.kind == "int" else max(param.choices)

    def _enumerate(self) -> Iterator[dict[str, Any]]:
        """Every configuration, by replaying ``_draw`` along each branch of its decision tree."""
        path: list[list[int]] = []
        while True:
            yield self._draw(_Enumerator(path))
            while path and path[-1][0] + 1 >= path[-1][1]:
                path.pop()
            if not path:
                return
            path[-1][0] += 1


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


class _Enumerator:
    """Follows ``path`` (index, size) decisions, extending it with index 0 at new decisions."""

    def __init__(self, path: list[list[int]]):
        self.path = path
        self.position = 0

    def _pick(self, options: Sequence[Any]) -> Any:
        if self.position == len(self.path):
            self.path.append([0, len(options)])
        index = self.path[self.position][0]
        self.position += 1
        return options[index]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._pick(choices)

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._pick(range(low, high + 1, step))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        count = round((high - low) / step) + 1 if step else 1
        return self._pick([min(high, low + k * (step or 0.0)) for k in range(count)])


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A built-in space by name (``tiny_lm``) or a user's YAML file by path."""
    path = resolve("search_spaces", name_or_path, option="--space")
    return SearchSpace.from_dict(read_yaml(path), source=str(path))


# ---- parsing and validation ---------------------------------------------------------------


class _Parser:
    """Checks one space document top to bottom; raises at the first problem found."""

    def __init__(self, data: Any, source: str | None):
        self.data = data
        self.source = source

    def parse(self) -> SearchSpace:
        data = self.data
        if not isinstance(data, dict):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise InputError(f"a search space must be a mapping of keys to values, got {kind}")
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise InputError(
                    f"unknown key (known: {', '.join(TOP_LEVEL_KEYS)})", key=yaml_key(key)
                )
        self.task = _choice_of(data.get("task", "causal_lm"), TASKS, "task")
        self.fixed = self._fixed(data.get("fixed", {}))
        declared = self._params(data.get("params"))
        self.layer_names = self._layer_names(declared)
        self._check_structure(declared)
        conditions = {}
        for param in declared.values():
            if param.when is not None:
                rule = self._rule(param.when, f"params.{param.name}.when")
                if rule.scope is not None and rule.scope != param.count_key:
                    raise InputError(self._scope_problem(param, rule), key=rule.key)
                conditions[param.name] = rule
        constraints = self._constraints(data.get("constraints", []))
        ordered = {name: declared[name] for name in _suggestion_order(declared)}
        return SearchSpace(
            name=self._name(data.get("name")),
            task=self.task,
            fixed=self.fixed,
            params=ordered,
            constraints=tuple(rule.expression for rule in constraints),
            description=_text(data.get("description", ""), "description"),
            source=self.source,
            _rules=(conditions, constraints),
            _layer_names=self.layer_names,
        )

    def _name(self, name: Any) -> str:
        if name is None and self.source:
            return Path(self.source).stem
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"must be a non-empty string, got {name!r}", key="name")
        return name

    def _fixed(self, fixed: Any) -> dict[str, Any]:
        if not isinstance(fixed, dict):
            raise InputError("must be a mapping of architecture keys to values", key="fixed")
        out = {}
        for key, value in fixed.items():
            where = f"fixed.{key}"
            _check_arch_key(key, where)
            if isinstance(value, list):
                if not _is_layer_key(key):
                    raise InputError("only layer keys take a per-layer list", key=where)
                for item in value:
                    _check_scalar(item, where)
                out[key] = list(value)
            else:
                _check_scalar(value, where)
                out[key] = value
            _check_enumerated(key, value if isinstance(value, list) else [value], where)
        return out

    def _params(self, params: Any) -> dict[str, Param]:
        if params is None:
            raise InputError("missing: a search space needs at least one parameter", key="params")
        if not isinstance(params, dict) or not params:
            raise InputError("must be a non-empty mapping of keys to parameters", key="params")
        out = {}
        for key, spec in params.items():
            where = f"params.{key}"
            _check_arch_key(key, where)
            if key in self.fixed:
                raise InputError("is also given in fixed", key=where)
            out[key] = _param(key, spec, where)
        return out

    def _layer_names(self, params: dict[str, Param]) -> dict[str, str]:
        names = {p.name: _count_key_of(p.name) for p in params.values() if p.per_layer}
        for key, value in self.fixed.items():
            if isinstance(value, list):
                names[key] = _count_key_of(key)
        return names

    def _check_structure(self, params: dict[str, Param]) -> None:
        """Layer counts, encoder keys and per-layer lists must fit the task."""
        present = set(params) | set(self.fixed)
        encoder_keys = sorted(k for k in present if k.startswith(ENCODER_PREFIX))
        counts = ["n_layers"]
        if self.task == "seq2seq":
            counts.append("n_encoder_layers")
        else:
            for key in [*encoder_keys, "n_encoder_layers", *DECODER_ONLY_KEYS]:
                if key in present:
                    where = "params" if key in params else "fixed"
                    what = "cross-attention" if key in DECODER_ONLY_KEYS else "encoder"
                    raise InputError(f"{what} keys need task: seq2seq", key=f"{where}.{key}")
        for count in counts:
            if count in params:
                _check_count_param(params[count])
            elif count in self.fixed:
                value = self.fixed[count]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise InputError(
                        f"must be an integer >= 1, got {value!r}", key=f"fixed.{count}"
                    )
                if value > MAX_LAYERS:
                    raise InputError(
                        f"must be at most {MAX_LAYERS} layers, got {value}", key=f"fixed.{count}"
                    )
            else:
                raise InputError(f"missing: give {count} in fixed or params", key="params")
        for key, value in self.fixed.items():
            if isinstance(value, list):
                count = _count_key_of(key)
                size = self.fixed.get(count)
                if size != len(value):
                    raise InputError(
                        f"a per-layer list needs {count} fixed to its length ({len(value)})",
                        key=f"fixed.{key}",
                    )
        if self.task == "seq2seq":
            for name in self.layer_names:
                if name.startswith(ENCODER_PREFIX) or name in DECODER_ONLY_KEYS:
                    continue
                if ENCODER_PREFIX + name not in present:
                    where = "params" if name in params else "fixed"
                    raise InputError(
                        f"per-layer decoder key in a seq2seq space: give encoder_{name} too "
                        "(fixed or params), so the encoder's value is explicit",
                        key=f"{where}.{name}",
                    )

    def _constraints(self, constraints: Any) -> tuple[_Rule, ...]:
        if not isinstance(constraints, list):
            raise InputError("must be a list of expressions", key="constraints")
        return tuple(
            self._rule(text, f"constraints[{index}]") for index, text in enumerate(constraints)
        )

    def _rule(self, text: Any, key: str) -> _Rule:
        if isinstance(text, Expression):
            expression = text
        else:
            try:
                expression = compile_expression(text)
            except InputError as exc:
                exc.key = key
                raise
        known = set(self.fixed) | set(self.data.get("params") or {})
        for name in sorted(expression.names):
            if name not in known:
                raise InputError(
                    f"unknown name '{name}'{_did_you_mean(name, known)} "
                    "(expressions read the keys of params and fixed)",
                    key=key,
                )
        scopes = {self.layer_names[n] for n in expression.names if n in self.layer_names}
        if len(scopes) > 1:
            raise InputError(
                "mixes per-layer names of the encoder and the decoder; write one expression "
                "for each stack",
                key=key,
            )
        return _Rule(expression, key, scopes.pop() if scopes else None)

    def _scope_problem(self, param: Param, rule: _Rule) -> str:
        per_layer = sorted(n for n in rule.expression.names if n in self.layer_names)
        if param.per_layer:
            return f"reads {', '.join(per_layer)} of the other stack's layers"
        return (
            f"'{param.name}' is not per_layer but its condition reads the per-layer "
            f"{', '.join(per_layer)}; make '{param.name}' per_layer too"
        )


def _param(key: str, spec: Any, where: str) -> Param:
    if not isinstance(spec, dict):
        raise InputError("must be a mapping such as {choice: [a, b]} or {int: [lo, hi]}", key=where)
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        raise InputError(f"needs exactly one of {', '.join(KINDS)}", key=where)
    kind = kinds[0]
    allowed = (kind, *_OPTIONS[kind], *_COMMON_OPTIONS)
    for option in spec:
        if option not in allowed:
            raise InputError(
                f"unknown option (allowed: {', '.join(allowed)})", key=f"{where}.{option}"
            )
    per_layer = spec.get("per_layer", False)
    if not isinstance(per_layer, bool):
        raise InputError(f"must be true or false, got {per_layer!r}", key=f"{where}.per_layer")
    if per_layer and not _is_layer_key(key):
        raise InputError("only layer keys can be per_layer", key=f"{where}.per_layer")
    when = spec.get("when")
    if when is not None:
        try:
            when = compile_expression(when)
        except InputError as exc:
            exc.key = f"{where}.when"
            raise
    if kind == "choice":
        choices = _choices(spec["choice"], f"{where}.choice")
        _check_enumerated(key, choices, f"{where}.choice")
        return Param(key, kind, choices=choices, when=when, per_layer=per_layer)
    low, high, step, log = _range(kind, spec, where)
    return Param(key, kind, low=low, high=high, step=step, log=log, when=when, per_layer=per_layer)


def _choices(values: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(values, list) or not values:
        raise InputError("must be a non-empty list of values", key=where)
    seen = set()
    for value in values:
        _check_scalar(value, where)
        marker = (type(value), value)
        if marker in seen:
            raise InputError(f"lists {value!r} twice", key=where)
        seen.add(marker)
    return tuple(values)


def _range(kind: str, spec: dict, where: str) -> tuple[Any, Any, Any, bool]:
    bounds = spec[kind]
    number = _integer if kind == "int" else _real
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise InputError("must be a list [low, high]", key=f"{where}.{kind}")
    low, high = (number(b, f"{where}.{kind}") for b in bounds)
    if low > high:
        raise InputError(f"low {low} is greater than high {high}", key=f"{where}.{kind}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise InputError(f"must be true or false, got {log!r}", key=f"{where}.log")
    if log and low <= 0:
        raise InputError(f"a log scale needs low > 0, got {low}", key=f"{where}.log")
    step = spec.get("step")
    if step is not None:
        step = number(step, f"{where}.step")
        if step <= 0:
            raise InputError(f"must be > 0, got {step}", key=f"{where}.step")
        if log and (kind == "float" or step != 1):
            raise InputError("step and log cannot be combined", key=f"{where}.step")
        if kind == "int":  # exact: no float division of numbers up to MAX_INT
            if (high - low) % step:
                raise InputError(
                    f"the range [{low}, {high}] is not a whole number of steps of {step}",
                    key=f"{where}.step",
                )
            return low, high, step, log
        steps = (high - low) / step
        if not steps <= MAX_STEPS:
            raise InputError(
                f"the range [{low}, {high}] has more than {MAX_STEPS:,} steps of {step}",
                key=f"{where}.step",
            )
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            raise InputError(
                f"the range [{low}, {high}] is not a whole number of steps of {step}",
                key=f"{where}.step",
            )
    return low, high, step, log


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be an integer, got {value!r}", key=where)
    if abs(value) > MAX_INT:
        raise InputError(f"must be within +-2**53, got {value}", key=where)
    return value


def _real(value: Any, where: str) -> float:
    # PyYAML reads 1e-4 (no dot) as a string; accept numeric strings rather than surprise users.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not abs(value) <= MAX_FLOAT
    ):
        raise InputError(f"must be a finite number, got {value!r}", key=where)
    return float(value)


def _check_count_param(param: Param) -> None:
    where = f"params.{param.name}"
    if param.when is not None:
        raise InputError("a layer count cannot be conditional", key=f"{where}.when")
    values = param.choices if param.kind == "choice" else [param.low, param.high]
    for value in values:
        if param.kind == "float" or isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"a layer count must be an integer, got {value!r}", key=where)
        if value < 1:
            raise InputError(f"a layer count must be >= 1, got {value}", key=where)
        if value > MAX_LAYERS:
            raise InputError(f"a layer count must be at most {MAX_LAYERS}, got {value}", key=where)


def _suggestion_order(params: dict[str, Param]) -> list[str]:
    """YAML order, except that a parameter waits for the parameters its condition reads."""
    needs = {}
    for param in params.values():
        deps = set(param.when.names) if param.when is not None else set()
        if param.per_layer:
            deps.add(_count_key_of(param.name))
        needs[param.name] = [d for d in params if d in deps]
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(params):
        ready = next(
            (n for n in params if n not in placed and all(d in placed for d in needs[n])), None
        )
        if ready is None:
            start = next(n for n in params if n not in placed)
            raise InputError(
                f"conditions form a cycle: {_cycle(start, needs, placed)}",
                key=f"params.{start}.when",
            )
        order.append(ready)
        placed.add(ready)
    return order


def _cycle(start: str, needs: dict[str, list[str]], placed: set[str]) -> str:
    trail = [start]
    while True:
        following = next(d for d in needs[trail[-1]] if d not in placed)
        if following in trail:
            loop = [*trail[trail.index(following) :], following]
            return " -> ".join(loop)
        trail.append(following)


def _check_arch_key(key: Any, where: str) -> None:
    if not isinstance(key, str):
        raise InputError(f"keys must be strings, got {key!r}", key=where)
    if key == "task":
        raise InputError("give task at the top level of the space", key=where)
    if key not in ARCH_KEYS:
        hint = _did_you_mean(key, ARCH_KEYS)
        raise InputError(f"not an architecture key{hint} (see ArchConfig.from_dict)", key=where)


def _check_scalar(value: Any, where: str) -> None:
    if not isinstance(value, _SCALAR_TYPES):
        raise InputError(
            f"values must be numbers, strings, booleans or null, got {value!r}", key=where
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"values must be finite, got {value!r}", key=where)


def _check_enumerated(key: str, values: Sequence[Any], where: str) -> None:
    """Catch typos in kinds (attention: performr) at load time, not mid-search."""
    allowed = _ENUMERATED.get(key.removeprefix(ENCODER_PREFIX))
    if allowed is None:
        return
    for value in values:
        if value not in allowed:
            raise InputError(f"{value!r} is not one of {', '.join(allowed)}", key=where)


def _choice_of(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise InputError(f"{value!r} is not one of {', '.join(allowed)}", key=key)
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {value!r}", key=key)
    return value


def _is_layer_key(key: str) -> bool:
    return key in LAYER_KEYS or key in _ENCODER_KEYS


def _count_key_of(key: str) -> str:
    return "n_encoder_layers" if key.startswith(ENCODER_PREFIX) else "n_layers"


def _layer_default(key: str) -> Any:
    return getattr(_LAYER_DEFAULTS, key.removeprefix(ENCODER_PREFIX))


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
