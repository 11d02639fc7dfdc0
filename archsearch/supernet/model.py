"""The supernet: one set of weights from which every configuration of a space is a sub-network.

A configuration's sub-network is the model ``build_model(config)`` builds, with each parameter
replaced by a leading slice of a shared tensor (``sharing.py`` says which). ``forward`` runs that
model through ``torch.func.functional_call`` with the slices in place, so a loss reaches the
shared tensors; ``extract`` copies the same slices into a fresh model, an ordinary ``nn.Module``
that costs, export and ``train`` take unchanged. Both read one mapping, so they agree.

Sizes: each shared tensor is the element-wise largest shape over probe configurations (the
space's extremes per family, and random draws). A configuration needing more than that is
refused with a clear error, never silently truncated.

Buffers (Performer's random features, LSH's rotations) are not shared: every sub-network is
built from the same seed, so a configuration always meets the same ones.
"""

from __future__ import annotations

import itertools
import random
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.families import attention_spec
from archsearch.families.registry import FAMILY_KEYS  # their weights are family-private
from archsearch.space import RandomDraws, SearchSpace
from archsearch.supernet.sharing import Placement, placement, shared_name

BUILD_SEED = 0  # every sub-network's buffers come from this seed
SKELETONS = 64  # built sub-networks kept for reuse (a training step meets a few per step)


class SupernetError(RuntimeError):
    """A configuration the supernet cannot express (outside the shapes it was sized for)."""


def build_subnet(config: ArchConfig) -> nn.Module:
    """``build_model(config)`` from the supernet's build seed (same buffers every time)."""
    from archsearch.models import build_model

    return build_model(config, seed=BUILD_SEED)


def storage_name(name: str) -> str:
    """Module attribute names cannot hold dots."""
    return name.replace(".", ":")


class Supernet(nn.Module):
    """Shared tensors by name; ``forward(config, tokens)`` runs one sub-network on them."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        super().__init__()
        self.shapes = dict(sorted(shapes.items()))
        self.weights = nn.ParameterDict(
            {storage_name(n): nn.Parameter(torch.zeros(s)) for n, s in self.shapes.items()}
        )
        self._skeletons: OrderedDict[ArchConfig, nn.Module] = OrderedDict()

    # ---- sizing and initialisation -------------------------------------------------------

    @classmethod
    def for_configs(cls, configs: Iterable[ArchConfig], seed: int = 0) -> Supernet:
        """Sized to hold every configuration given; initialised from their own inits."""
        largest: dict[str, tuple[torch.Tensor, Placement]] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for config in configs:
            model = build_subnet(config)
            for name, parameter in model.named_parameters():
                key = shared_name(name, config)
                where = placement(name, config, tuple(parameter.shape))
                reach = _reach(where)
                old = shapes.get(key)
                if old is not None and len(old) != parameter.ndim:
                    raise SupernetError(f"{key} has {len(old)} and {parameter.ndim} dimensions")
                shapes[key] = tuple(max(a, b) for a, b in zip(old or reach, reach, strict=True))
                if key not in largest or parameter.numel() > largest[key][0].numel():
                    largest[key] = (parameter.detach().clone(), where)
        supernet = cls(shapes)
        supernet._initialise(largest, seed)
        return supernet

    def _initialise(self, largest: dict[str, tuple[torch.Tensor, Placement]], seed: int) -> None:
        """Each tensor takes its largest probe's initial values where that probe sits, and draws
        the rest from that init's mean and spread (ones stay ones, zeros stay zeros)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, shape in self.shapes.items():
                source, where = largest[name]
                spread = source.std().item() if source.numel() > 1 else 0.0
                fill = torch.randn(shape, generator=generator) * spread + source.mean().item()
                fill[_indexer(where)] = source
                self.weights[storage_name(name)].copy_(fill)

    # ---- sub-networks --------------------------------------------------------------------

    def skeleton(self, config: ArchConfig) -> nn.Module:
        """The built sub-network of ``config`` (its own weights unused), kept for reuse."""
        model = self._skeletons.pop(config, None)
        if model is None:
            model = build_subnet(config)
            model.requires_grad_(False)
        self._skeletons[config] = model
        while len(self._skeletons) > SKELETONS:
            self._skeletons.popitem(last=False)
        return model

    def slices(self, config: ArchConfig, model: nn.Module) -> dict[str, torch.Tensor]:
        """Each parameter of ``config``'s model as the part of its shared tensor it occupies
        (``placement``: a leading slice for all but LSRA's convolution branch)."""
        out: dict[str, torch.Tensor] = {}
        for name, parameter in model.named_parameters():
            key = shared_name(name, config)
            shape = self.shapes.get(key)
            where = placement(name, config, tuple(parameter.shape))
            if shape is None or any(n > m for n, m in zip(_reach(where), shape, strict=True)):
                held = "nothing" if shape is None else f"shape {tuple(shape)}"
                raise SupernetError(
                    f"{name} needs shape {tuple(parameter.shape)} but the supernet holds {held} "
                    f"for {key}: the configuration is outside the space it was built for"
                )
            out[name] = _take(self.weights[storage_name(key)], where)
        return out

    def forward(self, config: ArchConfig, tokens: torch.Tensor, state: Any = None) -> Any:
        """``config``'s sub-network on ``tokens``, computed with the shared tensors."""
        model = self.skeleton(config)
        model.train(self.training)
        return torch.func.functional_call(
            model, self.slices(config, model), (tokens,), {"state": state}
        )

    def extract(self, config: ArchConfig) -> nn.Module:
        """A standalone model of ``config`` holding copies of its inherited weights."""
        model = build_subnet(config)
        with torch.no_grad():
            for name, weight in self.slices(config, model).items():
                model.get_parameter(name).copy_(weight)
        return model

    def as_module(self, config: ArchConfig) -> nn.Module:
        """``config``'s sub-network as a module whose weights ARE the shared tensors (for
        training code that takes a model: ``fit`` on it trains the supernet's slices)."""
        return _Bound(self, config)


class _Bound(nn.Module):
    def __init__(self, supernet: Supernet, config: ArchConfig):
        super().__init__()
        self.supernet, self.config = supernet, config

    def forward(self, tokens: torch.Tensor, state: Any = None) -> Any:
        return self.supernet(self.config, tokens, state)


def _reach(where: Placement) -> tuple[int, ...]:
    """The shape a tensor needs to hold a parameter placed at ``where``."""
    return tuple(max(index) + 1 if len(index) else 0 for index in where)


def _as_slice(index: range | list[int]) -> slice | None:
    """A contiguous ascending run as a slice (a view, no copy); None otherwise."""
    if isinstance(index, range) and index.step == 1:
        return slice(index.start, index.stop)
    if len(index) and list(index) == list(range(index[0], index[0] + len(index))):
        return slice(index[0], index[0] + len(index))
    return None


def _take(tensor: torch.Tensor, where: Placement) -> torch.Tensor:
    """The sub-tensor at ``where``: a view for contiguous runs, a gather (differentiable)
    for the others."""
    out = tensor
    for dim, index in enumerate(where):
        run = _as_slice(index)
        if run is not None:
            out = out.narrow(dim, run.start, run.stop - run.start)
        else:
            out = out.index_select(dim, torch.tensor(list(index), dtype=torch.long))
    return out


def _indexer(where: Placement) -> tuple[Any, ...]:
    """``where`` as an index for assignment (open mesh of the dimensions)."""
    if all(_as_slice(index) is not None for index in where):
        return tuple(_as_slice(index) for index in where)
    grids = [torch.tensor(list(index), dtype=torch.long) for index in where]
    shaped = []
    for dim, grid in enumerate(grids):
        view = [1] * len(grids)
        view[dim] = -1
        shaped.append(grid.view(view))
    return tuple(shaped)


# ---- probing a space --------------------------------------------------------------------


def probe_configs(space: SearchSpace, samples: int, seed: int = 0) -> list[ArchConfig]:
    """Configurations whose shapes bound the space's: for every attention and feed-forward
    family, every layer of that family at the largest widths (and at both ends of the settings
    its spec names in ``supernet_probe``: LSRA's split), plus ``samples`` random valid draws."""
    found: list[ArchConfig] = []
    attention = _choices(space, "attention")
    ffn = _choices(space, "ffn")
    for attn in attention:
        probed = attention_spec(attn).supernet_probe
        for feed in ffn:
            for ends in itertools.product(*(_range_ends(space, key) for key in probed)):
                forced = {"attention": attn, "ffn": feed}
                forced.update(
                    {key: end for key, end in zip(probed, ends, strict=True) if end is not None}
                )
                config = _valid(space, space.suggest(_Extremes(forced)))
                if config is not None:
                    found.append(config)
    rng = random.Random(seed)
    tries = 0
    while len(found) < samples + len(attention) * len(ffn) and tries < 20 * samples + 100:
        tries += 1
        config = _valid(space, space.sample(rng))
        if config is not None:
            found.append(config)
    return found


def extreme_config(
    space: SearchSpace, rng: random.Random, *, largest: bool, tries: int = 20
) -> ArchConfig | None:
    """A valid configuration at the space's widest (or narrowest) depth and widths, with its
    families (and other non-numeric choices) drawn at random: the sandwich's bread in a space
    where "the largest model" is one per combination of families, not one."""
    for _ in range(tries):
        config = _valid(space, space.suggest(_Widest(rng, largest)))
        if config is not None:
            return config
    return None


def sample_config(space: SearchSpace, rng: random.Random, tries: int = 100) -> ArchConfig:
    """A random valid configuration of ``space``."""
    for _ in range(tries):
        config = _valid(space, space.sample(rng))
        if config is not None:
            return config
    raise InputError(f"no valid configuration in {tries} draws", key="constraints")


def covering_configs(
    space: SearchSpace, rng: random.Random, count: int, tries: int = 20
) -> list[ArchConfig | None]:
    """``count`` sub-networks for one sandwich step (the widest, the narrowest, then random
    ones) whose per-layer families are dealt, layer by layer, from a shuffled deck of the
    space's families: with at least as many sub-networks as families every family of every
    layer the step reaches is trained, where independent draws leave about a third of them
    untrained each step (weights only one family has then lag the shared ones). None where no
    valid configuration took the dealt families in ``tries`` draws (the caller draws freely).
    """
    layers = _most_layers(space)
    dealt: list[dict[str, list[Any]]] = [{} for _ in range(count)]
    for key in FAMILY_KEYS:
        choices = _choices(space, key)
        if len(choices) < 2:
            continue
        for _ in range(layers):
            deck = rng.sample(choices, len(choices))
            for index, hand in enumerate(dealt):
                hand.setdefault(key, []).append(deck[index % len(deck)])
    found: list[ArchConfig | None] = []
    for index, hand in enumerate(dealt):
        largest = True if index == 0 else False if index == 1 else None
        config = None
        for _ in range(tries):
            config = _valid(space, space.suggest(_Dealt(rng, hand, largest)))
            if config is not None:
                break
        found.append(config)
    return found


def _most_layers(space: SearchSpace) -> int:
    param = space.params.get("n_layers")
    if param is None:
        fixed = space.fixed.get("n_layers", 1)
        return int(fixed)
    if param.kind == "choice":
        return int(max(param.choices))
    return int(param.high)


def _valid(space: SearchSpace, values: dict[str, Any]) -> ArchConfig | None:
    if space.violations(values):
        return None
    try:
        return space.to_config(values)
    except InputError:
        return None


def _choices(space: SearchSpace, key: str) -> list[Any]:
    param = space.params.get(key)
    if param is not None and param.kind == "choice":
        return list(param.choices)
    return [space.fixed.get(key)]


def _range_ends(space: SearchSpace, key: str) -> list[Any]:
    param = space.params.get(key)
    if param is None:
        return [None]
    if param.kind == "choice":
        return [min(param.choices), max(param.choices)]
    return [param.low, param.high]


class _Extremes:
    """A sampler that takes forced values by parameter name (per-layer names included) and
    otherwise the largest: the highest number, ``None`` (d_model) over any width."""

    def __init__(self, forced: dict[str, Any]):
        self.forced = forced

    def _forced(self, name: str, allowed: Sequence[Any]) -> tuple[bool, Any]:
        base = name.split(".")[0]
        value = self.forced.get(base)
        return (value is not None and value in allowed), value

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        hit, value = self._forced(name, list(choices))
        if hit:
            return value
        numbers = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if None in choices and len(numbers) + 1 == len(choices):
            return None  # a width left to d_model, the largest
        if numbers and len(numbers) == len(choices):
            return max(numbers)
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        return low + (high - low) // step * step

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        base = name.split(".")[0]
        value = self.forced.get(base)
        return float(value) if value is not None else high


class _Dealt:
    """A sampler giving per-layer family choices from ``hand`` (``attention.3`` -> the fourth
    dealt attention family), and the rest as ``_Widest`` (``largest`` True or False) or at
    random (None)."""

    def __init__(self, rng: random.Random, hand: dict[str, list[Any]], largest: bool | None):
        self.hand = hand
        self.rest: Any = RandomDraws(rng) if largest is None else _Widest(rng, largest)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        base, _, layer = name.partition(".")
        dealt = self.hand.get(base)
        hit = dealt is not None and layer.isdigit() and int(layer) < len(dealt)
        if hit and dealt[int(layer)] in choices:
            return dealt[int(layer)]
        return self.rest.suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        return self.rest.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self.rest.suggest_float(name, low, high, step=step, log=log)


class _Widest:
    """A sampler taking every number at its highest (``largest``) or lowest, a width left to
    ``None`` (d_model) as the highest, and anything else at random."""

    def __init__(self, rng: random.Random, largest: bool):
        self.rng, self.largest = rng, largest

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        numbers = [c for c in choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if numbers and len(numbers) + choices.count(None) == len(choices):
            if self.largest:
                return None if None in choices else max(numbers)
            return min(numbers)
        return choices[self.rng.randrange(len(choices))]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False):
        return low + (high - low) // step * step if self.largest else low

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return high if self.largest else low
