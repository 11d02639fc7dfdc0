"""Budget constraints on Optuna trials, written so Optuna and optuna-dashboard agree.

Optuna 5 reads constraints both from the per-key attributes that ``Trial.set_constraint``
writes and from the older single list attribute ``constraints``; optuna-dashboard 0.21 reads
only the list. Writing the list alone keeps one source of truth that both read (a value <= 0 is
feasible). The names of the entries are kept in the study's user attribute
``constraint_names``.

What the dashboard does with them (its HTTP API, ``/api/studies/<id>``): each trial carries the
list as ``constraints``, which its plots use to grey out infeasible points; but its
``best_trials`` (the "Best Trials" card and the Pareto front it highlights) are the
non-dominated COMPLETE trials with constraints ignored. So an over-budget candidate must not be
COMPLETE: the searcher records it PRUNED (see searcher.py), and both fronts agree.
"""

from __future__ import annotations

from collections.abc import Mapping

import optuna

from archsearch.search.internals import trial_id

LEGACY_KEY = "constraints"


def record_constraints(trial: optuna.Trial, constraints: Mapping[str, float]) -> None:
    """Store one value per budget, in the order of the study's ``constraint_names``."""
    values = [float(v) for v in constraints.values()]
    trial.storage.set_trial_system_attr(trial_id(trial), LEGACY_KEY, values)


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.constraints.values())
