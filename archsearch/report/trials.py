"""Which trials count for what (usable, baseline, best), defined once for reports and exports.

A trial is *usable* when it was trained to the end and meets every budget: Optuna state
COMPLETE, archsearch status ``complete`` (not ``infeasible``, whose quality is a placeholder,
nor a stopped or failed run) and all constraints <= 0. *Best* is the usable trial with the
lowest ``val_bpb``; ties go to fewer MACs, then to the earlier trial.
"""

from __future__ import annotations

import math
from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from archsearch.search.constraints import is_feasible

QUALITY = "val_bpb"
BASELINE_ATTR = "baseline"  # user attr of enqueued reference designs: "transformer", ...


def objective_names(study: optuna.Study) -> list[str]:
    """The study's objective names (``val_bpb`` first), as the driver recorded them."""
    names = study.user_attrs.get("objectives")
    if names:
        return list(names)
    return [f"objective_{i}" for i in range(len(study.directions))]


def objective_values(study: optuna.Study, trial: FrozenTrial) -> dict[str, float]:
    """Objective name -> value; empty for trials that never reported values."""
    if trial.values is None:
        return {}
    return dict(zip(objective_names(study), trial.values, strict=False))


def baseline_name(trial: FrozenTrial) -> str | None:
    name = trial.user_attrs.get(BASELINE_ATTR)
    return str(name) if name else None


def status(trial: FrozenTrial) -> str:
    """archsearch's status attr, or Optuna's state for trials archsearch did not describe."""
    return str(trial.user_attrs.get("status") or trial.state.name.lower())


def is_usable(trial: FrozenTrial) -> bool:
    """Trained to the end, within every budget, with a finite quality."""
    return (
        trial.state == TrialState.COMPLETE
        and trial.user_attrs.get("status") == "complete"
        and is_feasible(trial)
        and trial.values is not None
        and math.isfinite(trial.values[0])
    )


def usable_trials(study: optuna.Study, *, baselines: bool = True) -> list[FrozenTrial]:
    trials = [t for t in study.get_trials(deepcopy=False) if is_usable(t)]
    return trials if baselines else [t for t in trials if baseline_name(t) is None]


def best_trial(study: optuna.Study, *, baselines: bool = True) -> FrozenTrial | None:
    """Lowest ``val_bpb`` among usable trials (ties: fewer MACs, then earlier); None if none."""
    return _lowest(study, usable_trials(study, baselines=baselines), QUALITY)


def best_per_objective(study: optuna.Study) -> dict[str, FrozenTrial]:
    """For each objective, the usable trial that minimises it (all objectives are minimised)."""
    trials = usable_trials(study)
    best = {}
    for name in objective_names(study):
        trial = _lowest(study, trials, name)
        if trial is not None:
            best[name] = trial
    return best


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


def _lowest(study: optuna.Study, trials: list[FrozenTrial], name: str) -> FrozenTrial | None:
    others = [other for other in objective_names(study) if other != name]

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        # Ties go to the trial that is better on the other objectives (never a dominated one).
        values = objective_values(study, trial)
        rest = [values.get(other, math.inf) for other in others]
        return (values.get(name, math.inf), *rest, trial.user_attrs.get("macs", math.inf))

    candidates = [t for t in trials if name in objective_values(study, t)]
    return min(candidates, key=key) if candidates else None
