"""The third fidelity of a supernet search: mutations of the best trained model, trained from
scratch beside it in the companion study ``<study>.trained``.

The finalists stage trains the supernet's picks and the baselines; on ``oneshot_lm`` the brief
winner has been the Lite Transformer baseline every time, and the supernet does not rank that
model's neighbours (``mutations.py``). Each refine round takes the best trained model so far
(baselines included), trains ``refine`` of its mutations with the same recipe, and so moves the
search to where training, not the supernet, says the best models are. A round's plan (its
parent and mutations) is written to the study before anything is enqueued (study attribute
``refine``), so an interrupted run trains the same mutations, each once.
"""

from __future__ import annotations

import random
from typing import Any

import optuna
from optuna.trial import TrialState

from archsearch.search import trial_attrs as attrs
from archsearch.search.mutations import arch_key, mutations, values_of
from archsearch.search.resume import recover_interrupted, trained_count
from archsearch.search.trials import baseline_name, best_trial, trial_params

PLAN_ATTR = "refine"  # on the companion study: one {"parent", "params"} per round, in order


def plan_round(
    study: optuna.Study, inputs: Any, count: int, seed: int, round_: int
) -> dict[str, Any] | None:
    """Round ``round_``'s plan: the one written before, else (written now) ``count`` mutations
    of the study's best trial that no trial of the study has already; None without a best."""
    plans = list(study.user_attrs.get(PLAN_ATTR, []))
    if round_ < len(plans):
        return plans[round_]
    parent = best_trial(study)
    if parent is None:
        return None
    space, profile = inputs.space, inputs.profile
    taken = {
        arch_key(values_of(space, trial_params(t)))
        for t in study.get_trials(deepcopy=False)
        if trial_params(t)
    }
    rng = random.Random(f"refine:{seed}:{round_}:{parent.number}")
    plan = {
        "parent": parent.number,
        "parent_name": baseline_name(parent) or f"trial {parent.number}",
        "params": mutations(space, profile, parent.params, count, rng, taken),
    }
    study.set_user_attr(PLAN_ATTR, [*plans, plan])
    return plan


def queue_round(study: optuna.Study, plan: dict[str, Any], round_: int) -> int:
    """Enqueue the plan's mutations not yet in the study (by round and parameters); returns
    how many trials of the study are waiting to run.

    Trials a killed driver left running are closed first (``recover_interrupted``: the ones a
    worker had are queued again, as themselves); a mutation closed before any worker had it
    counts as absent, so it is enqueued again."""
    recover_interrupted(study)
    present = {
        arch_key(trial_params(t))
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(attrs.REFINE_ROUND) == round_
        and t.user_attrs.get(attrs.STATUS) != attrs.INTERRUPTED
    }
    for params in plan["params"]:
        if arch_key(params) in present:
            continue
        study.enqueue_trial(
            params, user_attrs={attrs.MUTATION_OF: plan["parent"], attrs.REFINE_ROUND: round_}
        )
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_refine(options: Any, inputs: Any, name: str, count: int, rounds: int, console: Any) -> Any:
    """Train ``rounds`` refine rounds of ``count`` mutations each in the companion study
    ``name`` (``options`` and ``inputs`` are the companion's); returns the last round's
    summary (None if none ran)."""
    import dataclasses

    from archsearch.search.driver import run_search
    from archsearch.search.storage import open_storage

    summary = None
    for round_ in range(rounds):
        study = optuna.load_study(study_name=name, storage=open_storage(options.storage))
        plan = plan_round(study, inputs, count, options.seed, round_)
        if plan is None or not plan["params"]:
            console.print("refine: no trained model to mutate, or no untried neighbour")
            break
        console.print(
            f"refine round {round_ + 1}: training {len(plan['params'])} mutation(s) of the best "
            f"trained model so far ({plan['parent_name']})"
        )
        waiting = queue_round(study, plan, round_)
        target = trained_count(study) + waiting
        summary = run_search(
            dataclasses.replace(options, trials=target), console=console, inputs=inputs
        )
        if summary.interrupted:
            break
    return summary
