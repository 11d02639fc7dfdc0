"""Family offsets: what weight sharing costs each layer kind, measured on the run's own
supernet, so that its scores compare candidates of different families fairly.

Shared weights serve some families' blocks badly: the supernet rates LSRA 0.1 to 0.4 bpb worse
than a short fine-tune of the same sub-network does, full attention 0.02 (measured,
``benchmarks/supernet_offsets.py``), while brief training from scratch rates LSRA the best
family. Fine-tuning every candidate costs seconds each (``finetune.py``); a *layer kind* (a
family with its own settings, e.g. LSRA at split 0.25 with kernel 7) is probed once instead.

A kind's probe is the reference design (the profile's Transformer baseline) with that kind in
every layer; the kind's offset is how much more the probe's raw score exceeds its fine-tuned
score than the reference's own does. A candidate's score is its raw score less the mean over
its layers of their attention and feed-forward kinds' offsets: a model whose every layer is of
one kind is moved by that kind's whole offset.

Offsets are cached beside the supernet (``offsets-<key>.json``, keyed by the reference and the
fine-tuning settings), written after each probe, so another run, or a resumed one, measures
none twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.config import ArchConfig, LayerConfig
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.families.registry import FAMILY_KEYS, specs
from archsearch.families.validate import validate_config
from archsearch.space import SearchSpace

FORMAT = "archsearch-offsets-v1"


@dataclass(frozen=True)
class Kind:
    """One layer kind: a family key's value and those of the family's settings that tell its
    offsets apart."""

    key: str  # attention | ffn
    family: str
    settings: tuple[tuple[str, Any], ...] = ()  # what tells its offset apart (the label)
    others: tuple[tuple[str, Any], ...] = ()  # the probe's other settings, not in the label

    @property
    def label(self) -> str:
        parts = [f"{self.key}={self.family}", *(f"{n}={v}" for n, v in self.settings)]
        return " ".join(parts)


@dataclass(frozen=True)
class Offsets:
    """Each kind's offset (label -> bpb) and which settings name a family's kinds."""

    offsets: dict[str, float]
    varied: dict[str, list[str]]  # "<key>=<family>" -> the settings its kinds carry

    def of_layer(self, layer: LayerConfig) -> float:
        """The offsets of the layer's attention and feed-forward kinds, added (0 when unknown)."""
        total = 0.0
        for key in FAMILY_KEYS:
            name = str(getattr(layer, key))
            settings = self.varied.get(f"{key}={name}", [])
            kind = Kind(key, name, tuple((n, getattr(layer, n)) for n in settings))
            total += self.offsets.get(kind.label, 0.0)
        return total

    def of(self, config: ArchConfig) -> float:
        """What to subtract from ``config``'s raw score: its layers' offsets, averaged."""
        layers = config.layers
        return sum(self.of_layer(layer) for layer in layers) / len(layers)

    def to_dict(self) -> dict[str, Any]:
        return {"offsets": self.offsets, "varied": self.varied}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Offsets:
        return cls(
            {str(k): float(v) for k, v in data["offsets"].items()},
            {str(k): list(v) for k, v in data["varied"].items()},
        )


def layer_kinds(space: SearchSpace) -> list[Kind]:
    """The kinds the space's layers can take, as probed: for each family of a per-layer family
    key, each value of the settings that shape its own tensors (``FamilySpec.supernet_probe``,
    LSRA's split), its other searched settings at their middle value (a window, a kernel size:
    they moved the offsets by 0.035 bpb or less, ``benchmarks/supernet_offsets.py``)."""
    kinds = []
    for key in FAMILY_KEYS:
        param = space.params.get(key)
        if param is None or param.kind != "choice":
            continue
        for name in param.choices:
            spec = specs(key)[str(name)]
            searched = [s.name for s in spec.settings if s.name in space.params]
            varied = [n for n in searched if n in spec.supernet_probe]
            middle = tuple(
                (n, values[len(values) // 2])
                for n in searched
                if n not in varied
                for values in [space.params[n].values()]
            )
            for combination in itertools.product(*(space.params[n].values() for n in varied)):
                kinds.append(
                    Kind(key, str(name), tuple(zip(varied, combination, strict=True)), middle)
                )
    return kinds


def _heads(space: SearchSpace) -> list[int]:
    """The head counts the space searches, most first (a probe's fallbacks)."""
    if "heads" not in space.params:
        return []
    return sorted((int(v) for v in space.params["heads"].values()), reverse=True)


def probe(reference: ArchConfig, kind: Kind, heads: Sequence[int] = ()) -> ArchConfig:
    """The reference with ``kind`` in every layer; where the reference's heads do not suit the
    kind (LSRA's attention branch needs whole, even-width heads), the first of ``heads`` that
    does. InputError when none does."""
    arch = reference.to_dict()
    arch[kind.key] = kind.family
    for name, value in (*kind.settings, *kind.others):
        arch[name] = value
    tried: list[Any] = [arch.get("heads"), *heads]
    error: InputError | None = None
    for count in tried:
        try:
            config = ArchConfig.from_dict({**arch, "heads": count})
            validate_config(config)
            return config
        except InputError as exc:
            error = error or exc
    assert error is not None
    raise error


def offsets_path(folder: Path, reference: ArchConfig, recipe: Recipe) -> Path:
    settings = recipe.supernet
    assert settings is not None
    record = {
        "format": FORMAT,
        "reference": reference.to_dict(),
        "finetune_steps": settings.finetune_steps,
        "finetune_lr": settings.finetune_lr,
        "score_tokens": settings.score_tokens,
        "seed": recipe.seed,
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return folder / f"offsets-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def measure_offsets(
    space: SearchSpace,
    supernet: Path,
    recipe: Recipe,
    reference: ArchConfig | None,
    *,
    workers: int = 1,
    say: Callable[[str], None] = print,
) -> Offsets:
    """Each layer kind's offset on the supernet saved at ``supernet``, read from its cache file
    where measured before; kinds the reference cannot take get none (said once). Without a
    ``reference`` (no design baseline fits the profile), the supernet's largest sub-network."""
    if reference is None:
        from archsearch.supernet.store import read_record

        reference = ArchConfig.from_dict(read_record(supernet)["ends"][0])
    path = offsets_path(supernet.parent, reference, recipe)
    held: dict[str, dict[str, Any]] = {}  # label -> the probe's arch, raw and fine-tuned
    if path.exists():
        held = json.loads(path.read_text())["probes"]
    probes: dict[str, ArchConfig] = {"reference": reference}
    heads = _heads(space)
    same: set[str] = set()  # kinds whose probe is the reference itself (full, dense): zero
    varied: dict[str, list[str]] = {}
    for kind in layer_kinds(space):
        varied[f"{kind.key}={kind.family}"] = [n for n, _ in kind.settings]
        try:
            config = probe(reference, kind, heads)
        except InputError as exc:
            say(f"offsets: no probe for {kind.label} on the reference ({exc}); offset 0")
            continue
        if config == reference:
            same.add(kind.label)
        else:
            probes[kind.label] = config
    todo = {
        label: config
        for label, config in probes.items()
        if held.get(label, {}).get("arch") != config.to_dict()
    }
    if todo:
        steps = recipe.supernet.finetune_steps if recipe.supernet else 0
        say(f"offsets: fine-tuning {len(todo)} probe(s) of the space's layer kinds, {steps} steps")
        for label, scores in _scored(supernet, todo, recipe, workers):
            held[label] = scores
            _write(path, held)
            if "failed" in scores:
                say(f"offsets: the probe of {label} failed ({scores['failed']}); offset 0")
    base = held["reference"]["raw"] - held["reference"]["finetuned"]
    offsets = dict.fromkeys(same, 0.0)
    for label, scores in held.items():
        gap = scores["raw"] - scores["finetuned"]
        if label in probes and label != "reference" and math.isfinite(gap):
            offsets[label] = gap - base
    return Offsets(offsets, varied)


def _write(path: Path, held: dict[str, dict[str, Any]]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"format": FORMAT, "probes": held}, indent=1))
    os.replace(temporary, path)


def _scored(
    supernet: Path, todo: dict[str, ArchConfig], recipe: Recipe, workers: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    calls = [(supernet, config.to_dict(), recipe) for config in todo.values()]
    if workers <= 1:
        for label, call in zip(todo, calls, strict=True):
            yield label, _probe_scores(*call)
        return
    from archsearch.evaluate.workers import torch_pool

    with torch_pool(min(workers, len(calls))) as pool:
        futures = {
            pool.submit(_probe_scores, *call): label
            for label, call in zip(todo, calls, strict=True)
        }
        for future in as_completed(futures):
            yield futures[future], future.result()


def _probe_scores(supernet: Path, arch: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """A probe's raw and fine-tuned scores (NaN, and why, where it failed)."""
    from archsearch.evaluate import CandidateFailed
    from archsearch.supernet.finetune import finetuned_from_file
    from archsearch.supernet.model import SupernetError
    from archsearch.supernet.scoring import score_from_file

    config = ArchConfig.from_dict(arch)
    try:
        raw = score_from_file(supernet, config, recipe)
        finetuned = finetuned_from_file(supernet, config, recipe)
    except (CandidateFailed, SupernetError, RuntimeError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, CandidateFailed) else f"{type(exc).__name__}: {exc}"
        return {"arch": arch, "raw": math.nan, "finetuned": math.nan, "failed": reason}
    return {"arch": arch, "raw": raw, "finetuned": finetuned}
