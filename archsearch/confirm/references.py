"""Confirm runs as fidelity references: a confirm's seed-0 run at an integer factor is exactly
the long reference ``archsearch fidelity --factor F`` would train for that configuration (same
initial weights, the recipe's fixed data order, F times the budget), so it is appended to a
fidelity journal under that job's key, and a later fidelity measurement reuses it instead of
training it again.

Other seeds are not written: confirm's seed s changes the data order too, fidelity's reference
seed s only the initial weights, so they are different runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from archsearch.confirm.runs import confirm_recipe, run_key, trial_key
from archsearch.evaluate.recipe import Recipe
from archsearch.fidelity import Journal, job_key
from archsearch.search import trial_attrs as attrs


def reference_recipe(base: Recipe, factor: float) -> Recipe | None:
    """The recipe of fidelity's long reference at ``factor``, when a confirm's seed-0 run is
    that run; None when it is not (a fractional factor, a budget that does not divide into
    whole steps, a proxy recipe)."""
    if factor != int(factor) or factor < 2 or base.proxy is not None:
        return None
    reference = base.replace(token_budget=int(factor) * base.token_budget)
    if confirm_recipe(base, factor, 0).token_budget != reference.token_budget:
        return None
    return reference


def reference_entries(
    companion: optuna.Study, base: Recipe, factor: float
) -> list[tuple[str, dict[str, Any]]]:
    """(fidelity job key, outcome) of each complete seed-0 run at ``factor``."""
    reference = reference_recipe(base, factor)
    if reference is None:
        return []
    entries = []
    for trial in companion.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = trial_key(trial)
        if key is None or key[1] != 0 or key[2] != run_key(0, 0, factor)[2]:
            continue
        if trial.value is None or not math.isfinite(trial.value):
            continue
        curve = [
            {"tokens": p["tokens"], "val_bpb": p["val_bpb"]}
            for p in trial.user_attrs.get(attrs.CURVE, [])
        ]
        outcome = {
            "val_bpb": float(trial.value),
            "curve": curve,
            "wall_s": trial.user_attrs.get(attrs.WALL_S),
            "source": f"archsearch confirm, study '{companion.study_name}' trial {trial.number}",
        }
        entries.append((job_key("long", trial.user_attrs[attrs.ARCH], reference, ()), outcome))
    return entries


def append_references(path: Path, entries: list[tuple[str, dict[str, Any]]]) -> int:
    """Append the entries the journal does not hold yet; returns how many were new."""
    journal = Journal(path)
    held = journal.read()
    new = [(key, outcome) for key, outcome in entries if key not in held]
    for key, outcome in new:
        journal.append(key, outcome)
    return len(new)
