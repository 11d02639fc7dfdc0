"""The third fidelity of a supernet search: mutations of the best trained model, trained from
scratch beside it in the companion study ``<study>.trained``.

The finalists stage trains the supernet's picks and the baselines; on ``oneshot_lm`` the brief
winner has been the Lite Transformer baseline every time, and the supernet does not rank that
model's neighbours (``mutations.py``). Each refine round takes the best trained model so far
(baselines included), trains ``refine`` of its mutations with the same recipe, and so moves the
search to where training, not the supernet, says the best models are. A round's plan (its
parent and mutations) is written to the study before anything is enqueued (study attribute
``refine``), so an interrupted run trains the same mutations, each once.

Which mutations: with ``refine_pool`` in the recipe, a pool of that many neighbours (the
parent's whole-stack neighbours first: one parameter changed in every layer) is scored by
fine-tuning each on the supernet (``finetune.py``), and the ``refine`` best are trained; the
pool and its scores are kept in the plan. Among the Lite Transformer's neighbours, the
fine-tuned score agreed with 8x training where the supernet's raw score did not (README). An
interrupted run re-scores a pool whose plan was not yet written. Without a pool, the mutations
are ``refine`` random ones.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from archsearch.search import trial_attrs as attrs
from archsearch.search.mutations import arch_key, mutations, neighbour_pool, values_of
from archsearch.search.resume import recover_interrupted, trained_count
from archsearch.search.trials import baseline_name, best_trial, trial_params

PLAN_ATTR = "refine"  # on the companion study: one {"parent", "params", ...} per round, in order

# architectures (``ArchConfig`` dicts) -> (fine-tuned score, why it failed or '') of each
Scorer = Callable[[Sequence[dict[str, Any]]], list[tuple[float, str]]]


def plan_round(
    study: optuna.Study,
    inputs: Any,
    count: int,
    seed: int,
    round_: int,
    pool: int = 0,
    score: Scorer | None = None,
) -> dict[str, Any] | None:
    """Round ``round_``'s plan: the one written before, else (written now) ``count`` mutations
    of the study's best trial that no trial of the study has already (the ``count`` best of a
    ``pool`` of neighbours by ``score``, where both are given); None without a best."""
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
    plan: dict[str, Any] = {
        "parent": parent.number,
        "parent_name": baseline_name(parent) or f"trial {parent.number}",
    }
    if pool and score is not None:
        candidates = neighbour_pool(space, profile, parent.params, pool, rng, taken)
        archs = [space.to_config(values_of(space, p)).to_dict() for p in candidates]
        scored = [  # a failed score is None (and why): JSON has no NaN
            {"params": p, "finetuned_bpb": value if math.isfinite(value) else None}
            | ({"failed": why} if why else {})
            for p, (value, why) in zip(candidates, score(archs), strict=True)
        ]
        ranked = sorted(
            (s for s in scored if s["finetuned_bpb"] is not None),
            key=lambda s: s["finetuned_bpb"],
        )
        plan["params"] = [s["params"] for s in ranked[:count]]
        plan["finetuned_bpb"] = [s["finetuned_bpb"] for s in ranked[:count]]
        plan["pool"] = scored
    else:
        plan["params"] = mutations(space, profile, parent.params, count, rng, taken)
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
    scores = plan.get("finetuned_bpb") or [None] * len(plan["params"])
    for params, score in zip(plan["params"], scores, strict=True):
        if arch_key(params) in present:
            continue
        marks = {attrs.MUTATION_OF: plan["parent"], attrs.REFINE_ROUND: round_}
        if score is not None:
            marks[attrs.FINETUNED_BPB] = score
        study.enqueue_trial(params, user_attrs=marks)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_refine(
    options: Any,
    inputs: Any,
    name: str,
    count: int,
    rounds: int,
    console: Any,
    pool: int = 0,
    score: Scorer | None = None,
) -> Any:
    """Train ``rounds`` refine rounds of ``count`` mutations each in the companion study
    ``name`` (``options`` and ``inputs`` are the companion's), picked from a ``pool`` by
    ``score`` where both are given; returns the last round's summary (None if none ran)."""
    import dataclasses

    from archsearch.search.driver import run_search
    from archsearch.search.storage import open_storage

    summary = None
    for round_ in range(rounds):
        study = optuna.load_study(study_name=name, storage=open_storage(options.storage))
        plan = plan_round(study, inputs, count, options.seed, round_, pool, score)
        if plan is None or not plan["params"]:
            console.print("refine: no trained model to mutate, or no untried neighbour")
            break
        how = (
            f"the best {len(plan['params'])} by fine-tuned score of {len(plan['pool'])} neighbours"
            if "pool" in plan
            else f"{len(plan['params'])} mutation(s)"
        )
        console.print(
            f"refine round {round_ + 1}: training {how} of the best trained model so far "
            f"({plan['parent_name']})"
        )
        waiting = queue_round(study, plan, round_)
        target = trained_count(study) + waiting
        summary = run_search(
            dataclasses.replace(options, trials=target), console=console, inputs=inputs
        )
        if summary.interrupted:
            break
    return summary
