"""A trained supernet on disk, keyed by what decides its weights, so a second ``run`` (another
profile, another seed, another sampler) reuses it instead of training it again.

The key hashes the space's parameters, fixed values and constraints, the recipe (data,
tokenizer, optimizer, schedule, supernet settings), the corpus fingerprint and the torch
version. Files are written with ``torch.save`` and read with ``weights_only=True`` (no code runs
from them), through a temporary file and a rename, so an interrupted write leaves the last good
checkpoint; an interrupted training resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from archsearch.cache import cache_root
from archsearch.config import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.evaluate.data import data_fingerprint
from archsearch.evaluate.recipe import Recipe
from archsearch.seeding import seeded
from archsearch.space import SearchSpace
from archsearch.supernet.model import Supernet, probe_configs, storage_name
from archsearch.supernet.sharing import check_shareable
from archsearch.supernet.training import SupernetState, train_supernet

FORMAT = "archsearch-supernet-v3"  # v2: extremes with random families; v3: LSRA placed by channel
WEIGHTS = "supernet.pt"
CHECKPOINT = "checkpoint.pt"


def space_fingerprint(space: SearchSpace) -> dict[str, Any]:
    """What of a space decides a supernet's shapes and training draws (not its name)."""
    return {
        "task": space.task,
        "fixed": space.fixed,
        "params": [repr(param) for param in space.params.values()],
        "constraints": [rule.text for rule in space.constraints],
    }


def supernet_key(space: SearchSpace, recipe: Recipe) -> str:
    record = {
        "format": FORMAT,
        "space": space_fingerprint(space),
        "recipe": _training_part(recipe),
        "data": data_fingerprint(recipe),
        "torch": torch.__version__,
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# settings of what happens after the supernet is trained (how candidates are scored, how many,
# which finalists): they leave its weights, and so its cache key, unchanged
SCORING_KEYS = (
    "candidates",
    "finalists",
    "finalist_evaluator",
    "finalists_by",
    "score_tokens",
    "finetune_steps",
    "finetune_lr",
    "shortlist",
    "offsets",
    "refine",
    "refine_rounds",
    "refine_by",
    "refine_from",
)


def _training_part(recipe: Recipe) -> dict[str, Any]:
    """The recipe less what does not change the supernet's weights (names, and what happens
    after it is trained: how many candidates, which finalists)."""
    out = {k: v for k, v in recipe.to_dict().items() if k not in ("name", "description")}
    out["supernet"] = {k: v for k, v in out["supernet"].items() if k not in SCORING_KEYS}
    if not out["supernet"].get("cover_families"):  # off: the key of supernets made before it
        out["supernet"].pop("cover_families", None)
    return out


def supernet_dir(space: SearchSpace, recipe: Recipe) -> Path:
    return cache_root() / "supernets" / f"{space.name}-{supernet_key(space, recipe)}"


def ends_of(configs: list[ArchConfig]) -> list[ArchConfig]:
    """The largest and the smallest configuration by MACs (the sandwich's bread)."""
    ranked = sorted(configs, key=lambda config: estimate_costs(config).macs)
    return [ranked[-1], ranked[0]]


Progress = Callable[[int, int, float], None]


def ensure_supernet(
    space: SearchSpace,
    recipe: Recipe,
    *,
    threads: int = 1,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    checkpoint_every: int = 50,
) -> Path:
    """The path of the trained supernet for ``space`` and ``recipe``: read from the cache, or
    trained now (resuming an interrupted training) and cached."""
    assert recipe.supernet is not None
    check_shareable(space)
    folder = supernet_dir(space, recipe)
    final = folder / WEIGHTS
    if final.exists():
        if log is not None:
            log(f"supernet: reusing {final}")
        return final
    folder.mkdir(parents=True, exist_ok=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    probes = probe_configs(space, recipe.supernet.probes, seed=recipe.seed)
    ends = ends_of(probes)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # A private random stream (sub-networks that draw during forward, e.g. LSH hashing,
        # read it), seeded by the recipe and saved with each checkpoint.
        with seeded(recipe.seed):
            supernet = Supernet.for_configs(probes, seed=recipe.seed)
            resume = None
            if (folder / CHECKPOINT).exists():
                payload = _load(folder / CHECKPOINT)
                _load_weights(supernet, payload)
                resume = SupernetState(
                    step=payload["step"],
                    optimizer=payload["optimizer"],
                    losses=payload["losses"],
                )
                torch.set_rng_state(payload["rng"])
                if log is not None:
                    log(f"supernet: resuming at step {resume.step} from {folder / CHECKPOINT}")

            def save(state: SupernetState) -> None:
                _save(folder / CHECKPOINT, _payload(supernet, recipe, state, ends, {}))

            state = train_supernet(
                supernet,
                space,
                recipe,
                ends,
                resume=resume,
                checkpoint=save,
                checkpoint_every=checkpoint_every,
                progress=progress,
            )
    finally:
        torch.set_num_threads(previous_threads)
    spent = {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
    }
    _save(final, _payload(supernet, recipe, state, ends, spent, optimizer=False))
    (folder / CHECKPOINT).unlink(missing_ok=True)
    return final


def read_record(path: Path) -> dict[str, Any]:
    """A saved supernet's record (steps, tokens, losses, time spent) without reading its
    weights: the tensors stay memory-mapped and untouched."""
    payload = _load(path, mmap=True)
    return {k: v for k, v in payload.items() if k not in ("weights", "optimizer", "shapes")}


def load_supernet(path: Path) -> tuple[Supernet, dict[str, Any]]:
    """The supernet saved at ``path`` and its record (steps, tokens, losses, time spent)."""
    payload = _load(path)
    supernet = Supernet({name: tuple(shape) for name, shape in payload["shapes"].items()})
    _load_weights(supernet, payload)
    supernet.eval()
    record = {k: v for k, v in payload.items() if k not in ("weights", "optimizer", "shapes")}
    return supernet, record


def _payload(
    supernet: Supernet,
    recipe: Recipe,
    state: SupernetState,
    ends: list[ArchConfig],
    spent: dict[str, float],
    *,
    optimizer: bool = True,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "recipe": recipe.to_dict(),
        "shapes": {name: list(shape) for name, shape in supernet.shapes.items()},
        "weights": {
            name: supernet.weights[storage_name(name)].detach() for name in supernet.shapes
        },
        "step": state.step,
        "tokens": state.step * recipe.tokens_per_step * (len(ends) + _random(recipe)),
        "losses": list(state.losses),
        "optimizer": state.optimizer if optimizer else None,
        "rng": torch.get_rng_state(),
        "ends": [config.to_dict() for config in ends],
        **spent,
    }


def _random(recipe: Recipe) -> int:
    return recipe.supernet.random_subnets if recipe.supernet is not None else 0


def _load_weights(supernet: Supernet, payload: dict[str, Any]) -> None:
    with torch.no_grad():
        for name, tensor in payload["weights"].items():
            supernet.weights[storage_name(name)].copy_(tensor)


def _save(path: Path, payload: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _load(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an archsearch supernet ({FORMAT})")
    return payload
