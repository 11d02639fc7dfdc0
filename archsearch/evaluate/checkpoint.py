"""Longer training of a found configuration, with resumable checkpoints in a safe format.

A checkpoint holds tensors and plain data only (weights, optimizer state, recurrent memory, the
random generator's state, step counters, the learning curve, the architecture and recipe as
dictionaries): it is written with ``torch.save`` and read back with ``weights_only=True``, so
loading one never runs code from the file. It is written to a temporary file and renamed over
the old one, so an interrupted write never leaves a broken checkpoint. A resumed run takes
exactly the steps an uninterrupted one takes (same batches, learning rates and random draws).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.order import seeded_order
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import Report, TrainState, check_compatible, fit
from archsearch.seeding import seeded

FORMAT = "archsearch-checkpoint-v1"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.yaml"


def save_checkpoint(
    path: Path,
    model: nn.Module,
    state: TrainState,
    arch: dict[str, Any],
    recipe: Recipe,
    order_seed: int | None = None,
) -> None:
    """Write weights and training state atomically (temporary file, then rename)."""
    payload = {
        "format": FORMAT,
        "arch": arch,
        "recipe": recipe.to_dict(),
        "model": model.state_dict(),
        "step": state.step,
        "optimizer": state.optimizer,
        "memory": state.memory,
        "loss_sum": state.loss_sum,
        "since_eval": state.since_eval,
        "curve": state.curve,
        "rng": state.rng,
        "order_seed": order_seed,
        "chosen": state.chosen,  # active selection's rows since the last validation point
    }
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code runs from the file)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"no checkpoint at {path}", key="--resume") from None
    except Exception as exc:  # truncated, not a torch file, or holding objects we never write
        raise InputError(f"cannot read checkpoint {path}: {exc}", key="--resume") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path} is not an archsearch checkpoint ({FORMAT})", key="--resume")
    return payload


def train_state(payload: dict[str, Any]) -> TrainState:
    """The ``TrainState`` a loaded checkpoint describes."""
    return TrainState(
        step=payload["step"],
        optimizer=payload["optimizer"],
        memory=payload["memory"],
        loss_sum=payload["loss_sum"],
        since_eval=payload["since_eval"],
        curve=list(payload["curve"]),
        rng=payload["rng"],
        chosen=list(payload.get("chosen", [])),  # absent from checkpoints made before selection
    )


@dataclass(frozen=True)
class TrainOutcome:
    """Where a (possibly partial) training run ended."""

    step: int
    steps: int
    curve: tuple[dict[str, Any], ...]
    checkpoint: Path
    wall_s: float
    data_fingerprint: str

    @property
    def finished(self) -> bool:
        return self.step >= self.steps


def train_resumable(
    config: ArchConfig,
    recipe: Recipe,
    out_dir: Path,
    *,
    resume: bool = False,
    stop_at: int | None = None,
    report: Report | None = None,
    threads: int = 1,
    order_seed: int | None = None,
) -> TrainOutcome:
    """Train ``config`` for the recipe's budget, checkpointing into ``out_dir``.

    Checkpoints are written at each of the recipe's ``eval_points`` and where training stops
    (``stop_at`` steps in all, or the end). ``resume`` continues from ``out_dir``'s checkpoint,
    which must have been made with the same architecture and recipe. Results equal those of an
    uninterrupted run on the same number of threads. ``order_seed`` trains on that seed's data
    order (``order.py``; confirm passes the recipe's seed); None keeps the recipe's fixed order.
    """
    check_compatible(config, recipe)
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT
    arch = config.to_dict()
    state: TrainState | None = None
    payload: dict[str, Any] | None = None
    if resume:
        payload = load_checkpoint(path)
        _check_same(payload, arch, recipe, path)
        if payload.get("order_seed") != order_seed:
            raise InputError(
                f"{path} was made with data order {payload.get('order_seed')}, not {order_seed}",
                key="--resume",
            )
        state = train_state(payload)
    elif path.exists():
        raise InputError(
            f"{out_dir} already holds a checkpoint: pass --resume to continue it, or choose "
            "another --out",
            key="--out",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CONFIG).write_text(config.to_yaml())
    batches = make_batches(recipe)
    if order_seed is not None:
        batches = seeded_order(batches, order_seed)
    wall_start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        from archsearch.models import build_model

        # as in train.evaluate: build_model(config, seed=recipe.seed)'s weights, then training
        with seeded(recipe.seed):
            model = build_model(config)
            if payload is not None:
                model.load_state_dict(payload["model"])
            reached = [state.step if state is not None else 0]

            def keep(snapshot: TrainState) -> None:
                save_checkpoint(path, model, snapshot, arch, recipe, order_seed)
                reached.append(snapshot.step)

            curve = fit(
                model,
                recipe,
                report=report,
                batches=batches,
                resume=state,
                stop_at=stop_at,
                checkpoint=keep,
            )
    finally:
        torch.set_num_threads(previous_threads)
    return TrainOutcome(
        step=reached[-1],
        steps=recipe.steps,
        curve=tuple(curve),
        checkpoint=path,
        wall_s=time.perf_counter() - wall_start,
        data_fingerprint=batches.fingerprint,
    )


def _check_same(payload: dict[str, Any], arch: dict[str, Any], recipe: Recipe, path: Path) -> None:
    if payload["arch"] != arch:
        raise InputError(
            f"{path} was made for another architecture; resume with the config it was made "
            "for (saved beside it as config.yaml)",
            key="--resume",
        )
    if payload["recipe"] != recipe.to_dict():
        changed = sorted(
            key
            for key in set(payload["recipe"]) | set(recipe.to_dict())
            if payload["recipe"].get(key) != recipe.to_dict().get(key)
        )
        raise InputError(
            f"{path} was made with another recipe (differs in: {', '.join(changed)}); resume "
            "with the same --evaluator and --tokens",
            key="--resume",
        )
