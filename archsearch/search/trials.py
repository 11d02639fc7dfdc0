"""Which trials count for what (usable, baseline, best, the front), defined once for the search's
finalists, reports, exports and confirm.

A trial is *usable* when it was evaluated in full (trained to the end, or scored by the study's
zero-cost proxy) and meets every budget: Optuna state COMPLETE, archsearch status ``complete``
(not ``infeasible``, whose quality is a placeholder, nor a stopped or failed run) and all
constraints <= 0. *Best* is the usable trial with the best quality: the lowest ``val_bpb``, or
the highest proxy score (the study records which, see ``archsearch.search.quality``); ties go
to the better costs, then fewer MACs, then to the earlier trial. The *front* is the usable
trials no other dominates; ``spread`` picks K of them evenly over their costs, the best among
them (finalists of a supernet search, models to confirm).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.search import trial_attrs as attrs
from archsearch.search.constraints import is_feasible
from archsearch.search.quality import DEFAULT_QUALITY, MAXIMIZE, MINIMIZE, Quality, study_quality

QUALITY = DEFAULT_QUALITY.name  # the quality of studies that recorded none (they measured it)


def quality(study: optuna.Study) -> Quality:
    """The study's quality objective: name and direction (``val_bpb``, minimised, if unrecorded)."""
    return study_quality(study)


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names (the quality first), as the driver recorded them."""
    names = study.user_attrs.get("objectives")
    if names:
        return list(names)
    return [f"objective_{i}" for i in range(len(study.directions))]


def objective_directions(study: optuna.Study) -> dict[str, str]:
    """Objective name -> ``minimize`` or ``maximize``: the quality's recorded direction, and
    minimize for every cost."""
    names = objective_names(study)
    first = quality(study).direction
    return {name: first if index == 0 else MINIMIZE for index, name in enumerate(names)}


def objective_values(study: optuna.Study, trial: FrozenTrial) -> dict[str, float]:
    """Objective name -> value; empty for trials that never reported values."""
    if trial.values is None:
        return {}
    return dict(zip(objective_names(study), trial.values, strict=False))


def trial_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's Optuna parameters; for one still waiting in the queue, those it was enqueued
    with (Optuna keeps them aside, as the system attribute ``fixed_params``, until it runs)."""
    if trial.state == TrialState.WAITING:
        return dict(trial.system_attrs.get("fixed_params", {}))
    return dict(trial.params)


def baseline_name(trial: FrozenTrial) -> str | None:
    name = trial.user_attrs.get(attrs.BASELINE)
    return str(name) if name else None


def status(trial: FrozenTrial) -> str:
    """archsearch's status attr, or Optuna's state for trials archsearch did not describe."""
    return str(trial.user_attrs.get(attrs.STATUS) or trial.state.name.lower())


def is_usable(trial: FrozenTrial) -> bool:
    """Trained to the end, within every budget, with a finite quality."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.user_attrs.get(attrs.STATUS) == attrs.COMPLETE
        and is_feasible(trial)
        and trial.values is not None
        and math.isfinite(trial.values[0])
    )


def usable_trials(study: optuna.Study, *, baselines: bool = True) -> list[FrozenTrial]:
    trials = [t for t in study.get_trials(deepcopy=False) if is_usable(t)]
    return trials if baselines else [t for t in trials if baseline_name(t) is None]


def best_trial(study: optuna.Study, *, baselines: bool = True) -> FrozenTrial | None:
    """The usable trial with the best quality (lowest ``val_bpb``, highest proxy score; ties:
    better costs, fewer MACs, then earlier); None if none."""
    return _best(study, usable_trials(study, baselines=baselines), quality(study).name)


def best_designed(study: optuna.Study) -> FrozenTrial | None:
    """``best_trial`` among the baselines and the refine mutations (descendants of whatever
    was mutated): the hand-designed lineage, the supernet's finalists left out."""
    lineage = [
        t
        for t in usable_trials(study)
        if baseline_name(t) is not None or attrs.MUTATION_OF in t.user_attrs
    ]
    return _best(study, lineage, quality(study).name)


def best_per_objective(study: optuna.Study) -> dict[str, FrozenTrial]:
    """For each objective, the usable trial best on it (in the objective's direction)."""
    trials = usable_trials(study)
    best = {}
    for name in objective_names(study):
        trial = _best(study, trials, name)
        if trial is not None:
            best[name] = trial
    return best


def losses(study: optuna.Study, trial: FrozenTrial) -> dict[str, float]:
    """``objective_values`` turned so that lower is better for each (maximised ones negated)."""
    directions = objective_directions(study)
    return {
        name: -value if directions.get(name) == MAXIMIZE else value
        for name, value in objective_values(study, trial).items()
    }


def baseline_trials(study: optuna.Study) -> dict[str, FrozenTrial]:
    """Baseline name -> its trial; a usable one wins over a failed retry, then the latest."""
    found: dict[str, FrozenTrial] = {}
    for trial in study.get_trials(deepcopy=False):
        name = baseline_name(trial)
        if name is None:
            continue
        kept = found.get(name)
        if kept is None or (is_usable(trial), trial.number) > (is_usable(kept), kept.number):
            found[name] = trial
    return found


def status_counts(study: optuna.Study) -> Counter[str]:
    return Counter(status(t) for t in study.get_trials(deepcopy=False))


def _best(study: optuna.Study, trials: list[FrozenTrial], name: str) -> FrozenTrial | None:
    others = [other for other in objective_names(study) if other != name]

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        # Ties go to the trial that is better on the other objectives (never a dominated one).
        values = losses(study, trial)
        rest = [values.get(other, math.inf) for other in others]
        return (values.get(name, math.inf), *rest, trial.user_attrs.get(attrs.MACS, math.inf))

    candidates = [t for t in trials if name in objective_values(study, t)]
    return min(candidates, key=key) if candidates else None


def front_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Non-dominated trials among those evaluated in full within budget, best quality first
    (lowest val_bpb, or highest proxy score: Optuna's front follows the study's directions).

    ``study.best_trials`` already leaves out infeasible trials; the filter below keeps that true
    even for trials whose constraints were written by an older archsearch.
    """
    front = [trial for trial in study.best_trials if is_usable(trial)]
    return sorted(front, key=lambda trial: (list(losses(study, trial).values()), trial.number))


def spread(count: int, top: int, best: int) -> list[int]:
    """``top`` positions of ``count`` (sorted by cost) evenly spread, ``best`` always included.

    Targets are evenly spaced over 0..count-1; each takes the nearest position not yet taken,
    after ``best`` took its own. Returned in increasing order.
    """
    if top >= count:
        return list(range(count))
    chosen = {best}
    targets = [0.0] if top == 1 else [k * (count - 1) / (top - 1) for k in range(top)]
    # the target nearest to best is the one best stands for
    stand_in = min(range(len(targets)), key=lambda k: abs(targets[k] - best))
    for k, target in enumerate(targets):
        if k == stand_in:
            continue
        free = [p for p in range(count) if p not in chosen]
        chosen.add(min(free, key=lambda p: (abs(p - target), p)))
    return sorted(chosen)


def spread_pick(
    front: list[FrozenTrial],
    others: list[FrozenTrial],
    count: int,
    score: Callable[[FrozenTrial], Any],
) -> list[FrozenTrial]:
    """``count`` trials by the finalists' rule: the better-scored half of ``front`` (at least
    ``count``), spread over its MACs, its best score included; when the front has fewer, the
    best-scored of ``others`` fill in. Lower ``score`` is better. The front's cheap end holds
    the tiniest models, which are there for being cheap, not for their score."""
    front = sorted(front, key=lambda t: (score(t), t.number))
    front = front[: max(count, (len(front) + 1) // 2)]
    front.sort(key=lambda t: (t.user_attrs.get(attrs.MACS, math.inf), t.number))
    chosen: list[FrozenTrial] = []
    if front:
        best = min(range(len(front)), key=lambda i: (score(front[i]), front[i].number))
        chosen = [front[i] for i in spread(len(front), count, best)]
    if len(chosen) < count:
        taken = {t.number for t in chosen}
        rest = sorted(
            (t for t in others if t.number not in taken), key=lambda t: (score(t), t.number)
        )
        chosen += rest[: count - len(chosen)]
    return chosen


def attention_family(trial: FrozenTrial) -> str:
    """The attention family most of the trial's layers use (of tied ones, the first to appear)."""
    from archsearch.config import ArchConfig

    layers = ArchConfig.from_dict(trial.user_attrs[attrs.ARCH]).layers
    return str(Counter(layer.attention for layer in layers).most_common(1)[0][0])


def family_pick(
    trials: list[FrozenTrial], count: int, score: Callable[[FrozenTrial], Any]
) -> list[FrozenTrial]:
    """``count`` trials: the best-scored of each majority attention family, the better families
    first; when there are fewer families than ``count``, the best-scored of the rest fill in.
    Lower ``score`` is better. A supernet's scores are fair within a family and biased between
    families (``archsearch/supernet/offsets.py``), so its finalists are the families' best and
    training decides between them."""
    ranked = sorted(trials, key=lambda t: (score(t), t.number))
    best: dict[str, FrozenTrial] = {}
    for trial in ranked:
        best.setdefault(attention_family(trial), trial)
    chosen = list(best.values())[:count]
    taken = {t.number for t in chosen}
    chosen += [t for t in ranked if t.number not in taken][: count - len(chosen)]
    return chosen
