"""A measurement's units of work (``Job``) and what they fill in (``FidelityResult``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from archsearch.evaluate.recipe import Recipe


@dataclass
class FidelityResult:
    """One configuration's brief and long training and its proxies.

    ``short_curve`` / ``long_curve``: validation bpb at each of the recipe's ``eval_points``
    (``{"tokens", "val_bpb"}``), for reading how each run was still moving when it stopped
    (``long_curve``: the first reference seed's run). Empty for jobs read from a journal written
    before curves were recorded. ``long_runs``: each reference seed's bpb, in seed order;
    ``long_bpb`` is their mean and ``long_wall_s`` their total.
    """

    arch: dict[str, Any]
    family: str
    macs: int
    params: int
    short_bpb: float = math.nan
    long_bpb: float = math.nan
    short_score: float = math.nan  # the recipe's quality of the brief run (see ``brief_score``)
    short_wall_s: float = 0.0
    long_wall_s: float = 0.0
    short_curve: list[dict[str, float]] = field(default_factory=list)
    long_curve: list[dict[str, float]] = field(default_factory=list)
    long_runs: list[float] = field(default_factory=list)
    # each brief seed's bpb and score, in seed order (the first is ``short_bpb`` / ``short_score``)
    short_runs: list[float] = field(default_factory=list)
    short_scores: list[float] = field(default_factory=list)
    proxies: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    supernet_bpb: float = math.nan  # inherited-weights score, for a supernet recipe
    finetuned_bpb: float = math.nan  # the same after the recipe's fine-tuning (finetune_steps)
    offset_bpb: float = math.nan  # supernet_bpb less its layers' family offsets (``offsets``)
    # with several supernet trainings (``supernet_seeds``): each one's raw score and score less
    # its own offsets, in seed order (the first is ``supernet_bpb`` / ``offset_bpb``)
    supernet_runs: list[float] = field(default_factory=list)
    offset_runs: list[float] = field(default_factory=list)


@dataclass(frozen=True, eq=False)  # identity: a recipe holds unhashable parts
class Job:
    """One unit of work: train a configuration (``short`` once per brief seed, ``long`` once per
    reference seed, ``replica`` counting from 0) or score its proxies."""

    kind: str
    index: int
    recipe: Recipe
    replica: int = 0

    @property
    def label(self) -> str:
        """How progress lines and failure reasons name it: ``long`` for the first seed."""
        return f"{self.kind} s{self.replica}" if self.replica else self.kind


def plan(
    results: list[FidelityResult],
    recipe: Recipe,
    long_recipe: Recipe,
    reference_seeds: int,
    with_proxies: bool,
    factor: int,
    brief_seeds: int = 1,
) -> list[Job]:
    """Every job of a measurement, longest first (so the last to finish is a short one)."""
    count = range(len(results))
    jobs = [
        Job("long", i, long_recipe.replace(seed=recipe.seed + k), k)
        for k in range(reference_seeds)
        for i in count
    ]
    jobs += [
        Job("short", i, recipe.replace(seed=recipe.seed + k) if k else recipe, k)
        for k in range(brief_seeds)
        for i in count
    ]
    jobs += [Job("proxies", i, recipe) for i in count] if with_proxies else []
    return sorted(jobs, key=lambda job: -_cost(job, results, factor))


def _cost(job: Job, results: list[FidelityResult], factor: int) -> float:
    weight = {"long": factor, "short": 1, "proxies": 0.1}[job.kind]
    return weight * results[job.index].macs


def take(result: FidelityResult, job: Job, outcome: dict[str, Any]) -> str:
    """Record a finished job on its configuration; what the progress line shows of it."""
    if "failed" in outcome:
        result.failed.append(f"{job.label}: {outcome['failed']}")
    if job.kind == "proxies":
        result.proxies = outcome.get("proxies", {})
        return " ".join(f"{k}={v:.4g}" for k, v in result.proxies.items())
    _record_run(result, job, outcome)
    if "failed" in outcome:
        return f"failed after {outcome.get('wall_s', math.nan):.1f} s: {outcome['failed']}"
    return f"{outcome['val_bpb']:.4f} bpb in {outcome['wall_s']:.1f} s"


def _record_run(result: FidelityResult, job: Job, outcome: dict[str, Any]) -> None:
    """A training job's outcome into its configuration's result."""
    bpb, wall = outcome.get("val_bpb", math.nan), outcome.get("wall_s", 0.0)
    if job.kind == "short":
        result.short_runs[job.replica] = bpb
        if job.replica == 0:
            result.short_bpb, result.short_wall_s = bpb, wall
            result.short_curve = outcome.get("curve", [])
        return
    result.long_runs[job.replica] = bpb
    result.long_wall_s += wall
    if job.replica == 0:
        result.long_curve = outcome.get("curve", [])
