"""Reference points every new study starts with: the Transformer and the Lite Transformer.

The Evolved Transformer's search was seeded with the Transformer; archsearch seeds each study
with the two references of its literature, sized to the profile's budget as far as the space can
express them:

- ``transformer``: full attention, dense FFN of 4 x d_model, no memory, no factorization,
  8 heads (Vaswani et al.), the same in every layer;
- ``lite_transformer``: Lite Transformer's flattened FFN (hidden width = d_model) with long-short
  range attention when the space offers it (half the channels on attention, 4 heads, dynamic
  convolutions with the paper's kernel schedule 3, 7, 15, 31, 31, 31), full attention otherwise.

"Sized to the budget" means the depth and width of the space that come closest to the
profile's binding budget without exceeding it, costs computed with ``estimate_costs`` (through
the driver's own verdict). Where a preferred value is not on offer, the nearest one is taken; a
reference that the space cannot express at all (e.g. a Transformer in a space fixed to LSRA) is
left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from archsearch.config import ArchConfig
from archsearch.profiles import Profile
from archsearch.search import trial_attrs as attrs
from archsearch.search.verdict import Verdict, judge
from archsearch.space import ENCODER_PREFIX, SearchSpace

STUDY_ATTR = "baselines"  # study user attribute: name -> what was enqueued
LITE_KERNELS = (3, 7, 15, 31, 31, 31)  # Lite Transformer's per-layer convolution kernels
RELAXATIONS = 3  # try the 1st, 2nd, 3rd nearest value of a soft preference before giving up


@dataclass(frozen=True)
class Baseline:
    """A reference architecture: Optuna parameters to enqueue and what they describe."""

    name: str
    params: dict[str, Any]  # Optuna parameter name -> value, as the space suggests them
    values: dict[str, Any]  # the flat architecture (``SearchSpace.suggest`` form)
    macs: float


Preference = Callable[[str, int | None, dict[str, Any]], Any]


def _transformer(key: str, layer: int | None, sizes: dict[str, Any]) -> Any:
    d_model = sizes["d_model"]
    return {
        "attention": "full",
        "ffn": "dense",
        "memory": "none",
        "ffn_ratio": 4,
        "ffn_dim": 4 * d_model,
        "heads": 8,
        "attn_dim": (None, d_model),
        "embed_dim": (None, d_model),
        "activation": "relu",
    }.get(key)


def _lite_transformer(key: str, layer: int | None, sizes: dict[str, Any]) -> Any:
    d_model = sizes["d_model"]
    kernel = LITE_KERNELS[min(layer or 0, len(LITE_KERNELS) - 1)]
    return {
        "attention": "lsra",
        "ffn": "dense",
        "memory": "none",
        "ffn_ratio": 1,
        "ffn_dim": d_model,
        "heads": 4,
        "lsra_split": 0.5,
        "conv_kernel": kernel,
        "conv_type": "dynamic",
        "attn_dim": (None, d_model),
        "embed_dim": (None, d_model),
        "activation": "relu",
    }.get(key)


STYLES: dict[str, tuple[Preference, dict[str, tuple[str, ...]]]] = {
    # name -> (preferences, what every layer must end up with for the name to be true)
    "transformer": (_transformer, {"attention": ("full",), "ffn": ("dense",)}),
    "lite_transformer": (_lite_transformer, {"attention": ("lsra", "full"), "ffn": ("dense",)}),
}
SOFT_KEYS = ("heads", "lsra_split")  # relaxed when the preferred value breaks a constraint


def design_baselines(space: SearchSpace, profile: Profile) -> list[Baseline]:
    """The references ``space`` can express within ``profile``'s budgets, largest that fit."""
    out = []
    for name, (prefer, required) in STYLES.items():
        best: tuple[float, Baseline] | None = None
        for sizes in _sizes(space):
            found = _first_trainable(space, profile, prefer, sizes)
            if found is None or not _is_style(found, required):
                continue
            params, verdict = found
            assert verdict.costs is not None
            fill = max(
                profile.violations(verdict.costs, verdict.config).values()
            )  # <= 0; closer to 0 is larger
            if best is None or fill >= best[0]:  # on a tie the deeper one (sizes go deeper)
                baseline = Baseline(name, params, verdict.values, float(verdict.costs.macs))
                best = (fill, baseline)
        if best is not None and all(b.params != best[1].params for b in out):
            out.append(best[1])  # a space that cannot tell the two apart gets one
    return out


def reference_design(space: SearchSpace, profile: Profile) -> ArchConfig | None:
    """The first design baseline (the Transformer) as a configuration: what a supernet's family
    offsets are measured against (``supernet/offsets.py``); None when none fits the profile."""
    baselines = design_baselines(space, profile)
    return space.to_config(baselines[0].values) if baselines else None


def enqueue_baselines(study: optuna.Study, make: Callable[[], list[Baseline]]) -> list[Baseline]:
    """Enqueue the references once per study; returns those enqueued by this call.

    A new study records what it will enqueue (study user attribute ``baselines``) before
    enqueuing, and each reference is enqueued only if no trial carries its name yet, so a run
    killed half-way enqueues the rest next time and never twice. A study that already has
    trials from before baselines existed gets none.
    """
    planned = study.user_attrs.get(STUDY_ATTR)
    if planned is None:
        if study.get_trials(deepcopy=False):
            study.set_user_attr(STUDY_ATTR, {})
            return []
        baselines = make()
        planned = {
            b.name: {"params": b.params, "arch": b.values, "macs": b.macs} for b in baselines
        }
        study.set_user_attr(STUDY_ATTR, planned)
    present = {t.user_attrs.get(attrs.BASELINE) for t in study.get_trials(deepcopy=False)}
    enqueued = []
    for name, record in planned.items():
        if name in present:
            continue
        study.enqueue_trial(record["params"], user_attrs={attrs.BASELINE: name})
        enqueued.append(Baseline(name, record["params"], record["arch"], record["macs"]))
    return enqueued


# ---- sizing -------------------------------------------------------------------------------


def _domain(space: SearchSpace, key: str) -> list[Any]:
    """Values ``key`` can take in the space (one if it is fixed, none if it is absent)."""
    if key in space.fixed:
        return [space.fixed[key]]
    param = space.params.get(key)
    if param is None:
        return []
    if param.kind == "choice":
        return list(param.choices)
    if param.kind == "int":
        return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
    return []


def _sizes(space: SearchSpace) -> list[dict[str, Any]]:
    """Every (n_layers, d_model) of the space; the encoder follows the decoder's depth."""
    depths = _domain(space, "n_layers") or [None]
    widths = _domain(space, "d_model") or [None]
    return [{"n_layers": n, "d_model": d} for n, d in itertools.product(depths, widths)]


def _first_trainable(
    space: SearchSpace, profile: Profile, prefer: Preference, sizes: dict[str, Any]
) -> tuple[dict[str, Any], Verdict] | None:
    """The configuration nearest to the preferences at this size that passes the verdict."""
    for ranks in itertools.product(range(RELAXATIONS), repeat=len(SOFT_KEYS)):
        picker = _Picker(prefer, sizes, dict(zip(SOFT_KEYS, ranks, strict=True)))
        values = space.suggest(picker)
        verdict = judge(space, profile, values)
        if verdict.trainable:
            return picker.params, verdict
        if not picker.relaxable or (verdict.over_budget and not verdict.invalid):
            return None  # nothing to relax, or too large at this size whatever the heads
    return None


def _is_style(found: tuple[dict[str, Any], Verdict], required: dict[str, tuple[str, ...]]) -> bool:
    """Whether the configuration really is the named reference (fixed keys included)."""
    config = found[1].config
    assert config is not None
    if config.memory != "none":
        return False
    layers = config.layers + config.encoder_layers
    for key, allowed in required.items():
        kinds = {getattr(layer, key) for layer in layers}
        if not kinds <= set(allowed):
            return False
        if len(allowed) > 1 and len(kinds) > 1:
            return False  # one kind in every layer: the preferred one if the space has it
    return True


class _Picker:
    """A ``space.suggest`` sampler that takes the preferred value, or the nearest on offer.

    Per-layer and encoder parameters (``encoder_heads.3``) read the preference of their base
    key; a key without a preference takes the first choice or the low end of its range.
    ``ranks`` picks the 2nd, 3rd... nearest value of a soft key instead of the nearest.
    """

    def __init__(self, prefer: Preference, sizes: dict[str, Any], ranks: dict[str, int]):
        self.prefer = prefer
        self.sizes = sizes
        self.ranks = ranks
        self.params: dict[str, Any] = {}
        self.relaxable = False  # whether a soft key had more than one option

    def _target(self, name: str) -> tuple[str, Any]:
        base, _, layer = name.partition(".")
        if base.startswith(ENCODER_PREFIX):
            base = base[len(ENCODER_PREFIX) :]
        if base in ("n_layers", "n_encoder_layers"):
            return base, self.sizes["n_layers"]
        if base == "d_model":
            return base, self.sizes["d_model"]
        sizes = {**self.sizes, "d_model": self.sizes["d_model"] or 0}
        return base, self.prefer(base, int(layer) if layer else None, sizes)

    def _choose(self, name: str, options: Sequence[Any]) -> Any:
        base, target = self._target(name)
        ordered = _by_nearness(options, target)
        rank = self.ranks.get(base, 0)
        if base in self.ranks and len(ordered) > 1:
            self.relaxable = True
        value = ordered[min(rank, len(ordered) - 1)]
        self.params[name] = value
        return value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._choose(name, list(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._choose(name, list(range(low, high + 1, step)))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if step is None:
            _, target = self._target(name)
            value = low if not isinstance(target, (int, float)) else min(high, max(low, target))
            self.params[name] = value
            return value
        count = round((high - low) / step) + 1
        return self._choose(name, [low + k * step for k in range(count)])


def _by_nearness(options: Sequence[Any], target: Any) -> list[Any]:
    """Options ordered from the preferred one; unknown preferences keep the space's order.

    A tuple target lists acceptable values in order; a number ranks numeric options by
    distance (the smaller on a tie, as it is the one more likely to fit).
    """
    targets = target if isinstance(target, tuple) else (target,)
    for wanted in targets:
        if wanted is None and None in options and target is not None:
            return [None, *[o for o in options if o is not None]]
        if _is_number(wanted):
            numeric = [o for o in options if _is_number(o)]
            if numeric:
                ranked = sorted(numeric, key=lambda o: (abs(o - wanted), o))
                return ranked + [o for o in options if o not in ranked]
        elif wanted is not None and wanted in options:
            return [wanted, *[o for o in options if o != wanted]]
    return list(options)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
