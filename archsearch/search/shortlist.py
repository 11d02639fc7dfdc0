"""Between the supernet's scores and the finalists: a shortlist re-scored by fine-tuning.

The supernet's raw scores rank hundreds of candidates in seconds, but shared weights serve some
families badly (LSRA most), which a short fine-tune from the inherited weights repairs
(``archsearch/supernet/finetune.py``). When the recipe sets ``supernet.shortlist`` (and
``finetune_steps``), ``shortlist`` candidates of the supernet study (picked as the finalists
would be) get that second score, and the finalists are picked by it instead, by the same rule.

The scores are kept in the supernet study's user attribute ``finetuned_bpb`` (trial number ->
score; Optuna does not let a finished trial change), written after each one, so an interrupted
run re-scores none twice; each finalist carries its own as the trial attribute of that name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import optuna

from archsearch.config import ArchConfig
from archsearch.evaluate.workers import torch_pool
from archsearch.search import trial_attrs as attrs
from archsearch.search.trials import spread_pick

FINETUNED_ATTR = attrs.FINETUNED_BPB  # on the supernet study: {trial number: fine-tuned score}

Trial = optuna.trial.FrozenTrial


def choose(trials: Sequence[Trial], count: int, score: Callable[[Trial], float]) -> list[Trial]:
    """``count`` of ``trials`` by the finalists' rule (``spread_pick``) over their (``score``,
    MACs) front. Lower scores are better."""

    def macs(trial: Trial) -> float:
        return float(trial.user_attrs.get(attrs.MACS, math.inf))

    front = [
        t
        for t in trials
        if not any(
            score(o) <= score(t)
            and macs(o) <= macs(t)
            and (score(o), macs(o)) != (score(t), macs(t))
            for o in trials
        )
    ]
    return spread_pick(front, list(trials), count, score)


def finetuned_scores(
    study: optuna.Study,
    shortlist: Sequence[Trial],
    supernet: Path,
    recipe: Any,
    workers: int,
    say: Callable[[str], None],
) -> dict[int, float]:
    """Each shortlisted trial's fine-tuned score (trial number -> bpb; NaN where it failed),
    computed by ``workers`` processes of one torch thread for those the study lacks."""
    held = {int(k): float(v) for k, v in study.user_attrs.get(FINETUNED_ATTR, {}).items()}
    todo = [t for t in shortlist if t.number not in held]
    if not todo:
        return held
    say(
        f"fine-tuning {len(todo)} shortlisted candidate(s) for "
        f"{recipe.supernet.finetune_steps} steps each before scoring them again"
    )
    with torch_pool(max(1, min(workers, len(todo)))) as pool:
        futures = {pool.submit(_score, supernet, t.user_attrs[attrs.ARCH], recipe): t for t in todo}
        for future in as_completed(futures):
            trial = futures[future]
            value, error = future.result()
            held[trial.number] = value
            study.set_user_attr(FINETUNED_ATTR, {str(k): v for k, v in sorted(held.items())})
            shown = f"{value:.4f} bpb" if math.isfinite(value) else f"failed ({error})"
            say(
                f"  #{trial.number} ({trial.user_attrs.get(attrs.MACS, 0) / 1e6:.1f}M MACs): "
                f"{trial.values[0]:.4f} -> {shown}"
            )
    return held


def scored_archs(
    supernet: Path, archs: Sequence[dict[str, Any]], recipe: Any, workers: int
) -> list[tuple[float, str]]:
    """Each architecture's fine-tuned score and why it failed ('' if it did not; NaN score), in
    order, computed by ``workers`` processes of one torch thread."""
    if not archs:
        return []
    with torch_pool(max(1, min(workers, len(archs)))) as pool:
        futures = [pool.submit(_score, supernet, arch, recipe) for arch in archs]
        return [future.result() for future in futures]


def _score(supernet: Path, arch: dict[str, Any], recipe: Any) -> tuple[float, str]:
    """One fine-tuned score in a worker; a failure is returned, not raised (NaN and why)."""
    from archsearch.supernet.finetune import finetuned_from_file

    try:
        return finetuned_from_file(supernet, ArchConfig.from_dict(arch), recipe), ""
    except (RuntimeError, ValueError) as exc:
        return math.nan, f"{type(exc).__name__}: {exc}"


def pick_by_finetuning(
    study: optuna.Study,
    shortlist: Sequence[Trial],
    inputs: Any,
    count: int,
    workers: int,
    say: Callable[[str], None],
) -> tuple[list[Trial], dict[int, float]]:
    """``count`` finalists picked by fine-tuned scores from ``shortlist`` (the supernet
    study's candidates, picked by the finalists' rule on their raw scores), and the scores."""
    from archsearch.supernet.store import ensure_supernet

    supernet = ensure_supernet(inputs.space, inputs.recipe, log=say)
    scores = finetuned_scores(study, shortlist, supernet, inputs.recipe, workers, say)
    scored = [t for t in shortlist if math.isfinite(scores.get(t.number, math.nan))]
    return choose(scored, count, lambda t: scores[t.number]), scores
