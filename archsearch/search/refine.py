"""The third fidelity of a supernet search: mutations of the best trained model, trained from
scratch beside it in the companion study ``<study>.trained``.

The finalists stage trains the supernet's picks and the baselines; on ``oneshot_lm`` the brief
winner has been the Lite Transformer baseline every time, and the supernet does not rank that
model's neighbours (``mutations.py``). Each refine round takes the best trained model so far
(baselines included), trains ``refine`` of its mutations with the same recipe, and so moves the
search to where training, not the supernet, says the best models are. A round's plan (its
parent and mutations) is written to the study before anything is enqueued (study attribute
``refine``), so an interrupted run trains the same mutations, each once.

Which mutations (``refine_by``): ``random`` redraws one or two decisions of the parent;
``family`` swaps the attention family, or the FFN family, of every layer at once
(``mutations.stack_neighbours``), scores every such swap by fine-tuning it on the supernet
(``finetune.py``), and trains the best swap of each kind in turn (the best attention swap, the
best FFN swap, then the second bests, ...): the supernet compares families of one kind more
fairly than kinds with each other (it still rates LSRA low, so an attention swap away from LSRA
scores well however it trains), the rule the finalists follow too. The swaps and their scores
are kept in the plan; an interrupted run re-scores swaps whose plan was not yet written.

Whose mutations (``refine_from``): ``best``, the best trained model; ``baseline``, the best of
the baselines and their mutations, the supernet's finalists left out (a finalist that wins the
brief stage by the synflow blend's capacity bonus has lost to the Lite Transformer at 8x).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import TrialState

from archsearch.families.registry import FAMILY_KEYS  # what refine_by: family swaps
from archsearch.search import trial_attrs as attrs
from archsearch.search.mutations import arch_key, mutations, stack_neighbours, values_of
from archsearch.search.resume import recover_interrupted, trained_count
from archsearch.search.trials import baseline_name, best_designed, best_trial, trial_params

PLAN_ATTR = "refine"  # on the companion study: one {"parent", "params", ...} per round, in order

# architectures (``ArchConfig`` dicts) -> (fine-tuned score, why it failed or '') of each
Scorer = Callable[[Sequence[dict[str, Any]]], list[tuple[float, str]]]


def plan_round(
    study: optuna.Study,
    inputs: Any,
    count: int,
    seed: int,
    round_: int,
    by: str = "random",
    from_: str = "best",
    score: Scorer | None = None,
) -> dict[str, Any] | None:
    """Round ``round_``'s plan: the one written before, else (written now) ``count`` mutations
    (``by``, module docstring; ``score`` ranks family swaps) of the study's best trial
    (``from_``) that no trial of the study has already; None without a parent."""
    plans = list(study.user_attrs.get(PLAN_ATTR, []))
    if round_ < len(plans):
        return plans[round_]
    parent = best_trial(study) if from_ == "best" else best_designed(study)
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
    if by == "family":
        if score is None:
            raise ValueError("refine_by family needs a scorer")
        swaps = stack_neighbours(space, profile, parent.params, rng, taken, FAMILY_KEYS)
        archs = [space.to_config(values_of(space, p)).to_dict() for _, p in swaps]
        pool = [  # a failed score is None (and why): JSON has no NaN
            {"swap": name, "params": p, "finetuned_bpb": value if math.isfinite(value) else None}
            | ({"failed": why} if why else {})
            for (name, p), (value, why) in zip(swaps, score(archs), strict=True)
        ]
        chosen = _kind_by_kind(pool, count)
        plan["params"] = [e["params"] for e in chosen]
        plan["finetuned_bpb"] = [e["finetuned_bpb"] for e in chosen]
        plan["pool"] = pool
    else:
        plan["params"] = mutations(space, profile, parent.params, count, rng, taken)
    study.set_user_attr(PLAN_ATTR, [*plans, plan])
    return plan


def _kind_by_kind(pool: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Up to ``count`` scored swaps: the best of each kind (kinds ordered by their best), then
    each kind's second best, and so on."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for entry in sorted(
        (e for e in pool if e["finetuned_bpb"] is not None), key=lambda e: e["finetuned_bpb"]
    ):
        kinds.setdefault(entry["swap"], []).append(entry)
    chosen: list[dict[str, Any]] = []
    depth = 0
    while len(chosen) < count and any(depth < len(k) for k in kinds.values()):
        chosen += [k[depth] for k in kinds.values() if depth < len(k)][: count - len(chosen)]
        depth += 1
    return chosen


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
    by: str = "random",
    from_: str = "best",
    score: Scorer | None = None,
) -> Any:
    """Train ``rounds`` refine rounds of ``count`` mutations each in the companion study
    ``name`` (``options`` and ``inputs`` are the companion's; ``by``, ``from_`` and ``score``
    as ``plan_round`` takes them); returns the last round's summary (None if none ran)."""
    import dataclasses

    from archsearch.search.driver import run_search
    from archsearch.search.storage import open_storage

    summary = None
    for round_ in range(rounds):
        study = optuna.load_study(study_name=name, storage=open_storage(options.storage))
        plan = plan_round(study, inputs, count, options.seed, round_, by, from_, score)
        if plan is None or not plan["params"]:
            console.print("refine: no trained model to mutate, or no untried neighbour")
            break
        how = (
            f"the best {len(plan['params'])} by fine-tuned score of {len(plan['pool'])} "
            "whole-stack family swaps"
            if "pool" in plan
            else f"{len(plan['params'])} mutation(s)"
        )
        whose = "trained model so far" if from_ == "best" else "baseline or mutation"
        console.print(
            f"refine round {round_ + 1}: training {how} of the best {whose} ({plan['parent_name']})"
        )
        waiting = queue_round(study, plan, round_)
        target = trained_count(study) + waiting
        summary = run_search(
            dataclasses.replace(options, trials=target), console=console, inputs=inputs
        )
        if summary.interrupted:
            break
    return summary
