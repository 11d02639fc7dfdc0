"""The second fidelity of a supernet search: the best few of the supernet's front, trained from
scratch by an ordinary training recipe, in a companion study ``<study>.trained``.

The supernet scores hundreds of candidates by inherited weights; its ranking is cheap, not
proven. The finalists (the better-scored half of the supernet front, spread over its MACs, its
best score always among them) and the baselines are then trained briefly like any candidate of
a training search, so the front a user reads, plots, exports and confirms is made of trained
models. With a ``shortlist`` in the recipe, the finalists are picked the same way from a
shortlist re-scored by fine-tuning (``shortlist.py``). Each finalist carries its supernet score
and trial number (``supernet_bpb``, ``supernet_trial``, and ``finetuned_bpb`` from a
shortlist), and each study names the other (study attributes ``finalists`` and
``supernet_study``), so the dashboard shows how candidates moved from one stage to the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna

from archsearch.search import trial_attrs as attrs
from archsearch.search.inputs import check_finalist_recipe, load_inputs
from archsearch.search.trials import (
    baseline_name,
    family_pick,
    front_trials,
    is_usable,
    losses,
    spread_pick,
)

if TYPE_CHECKING:
    from archsearch.search.refine import Scorer

FINALISTS_ATTR = "finalists"  # on the supernet study: the companion's name and the evaluator
SUPERNET_STUDY_ATTR = "supernet_study"  # on the companion: the supernet study's name
SCORE_ATTR, SOURCE_ATTR = attrs.SUPERNET_BPB, attrs.SUPERNET_TRIAL  # on each finalist


def companion_name(study_name: str) -> str:
    return f"{study_name}.trained"


def pick_finalists(
    study: optuna.Study, count: int, by: str = "front"
) -> list[optuna.trial.FrozenTrial]:
    """``count`` candidates of the supernet study, baselines left out (they are trained anyway):
    by ``spread_pick`` over the study's front, or (``by="family"``) the best of each majority
    attention family (``family_pick``)."""
    rest = [
        t for t in study.get_trials(deepcopy=False) if is_usable(t) and baseline_name(t) is None
    ]

    def score(trial: optuna.trial.FrozenTrial) -> list[float]:
        return list(losses(study, trial).values())

    if by == "family":
        return family_pick(rest, count, score)
    front = [t for t in front_trials(study) if baseline_name(t) is None]
    return spread_pick(front, rest, count, score)


def queue_finalists(
    companion: optuna.Study,
    finalists: list[optuna.trial.FrozenTrial],
    finetuned: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """Enqueue each finalist not yet in the companion study (a resumed run enqueues none
    twice), with its supernet score and, from a shortlist, its fine-tuned one; returns the
    parameters enqueued by this call."""
    present = set()
    for trial in companion.get_trials(deepcopy=False):
        present.add(trial.user_attrs.get(SOURCE_ATTR))
    enqueued = []
    for trial in finalists:
        if trial.number in present:
            continue
        scores = {SCORE_ATTR: trial.values[0], SOURCE_ATTR: trial.number}
        if finetuned and trial.number in finetuned:
            scores[attrs.FINETUNED_BPB] = finetuned[trial.number]
        companion.enqueue_trial(trial.params, user_attrs=scores)
        enqueued.append(trial.params)
    return enqueued


def _swap_scorer(inputs: Any, workers: int, say: Callable[[str], None]) -> Scorer:
    """Refine's scorer of family swaps: architectures' fine-tuned scores on the run's
    supernet (``refine_by: family``; not called otherwise)."""

    def score(archs: Sequence[dict[str, Any]]) -> list[tuple[float, str]]:
        from archsearch.search.shortlist import scored_archs
        from archsearch.supernet.store import ensure_supernet

        say(
            f"refine: fine-tuning {len(archs)} family swap(s) for "
            f"{inputs.recipe.supernet.finetune_steps} steps each to rank them"
        )
        supernet = ensure_supernet(inputs.space, inputs.recipe, log=say)
        return scored_archs(supernet, archs, inputs.recipe, workers)

    return score


def run_finalists(options: Any, inputs: Any, study_name: str, count: int, console: Any) -> Any:
    """Train ``count`` finalists of the supernet study ``study_name`` and the baselines in its
    companion study, then the recipe's refine rounds (``refine.py``); returns that search's
    summary, its wall time the stages' sum (None when there is nothing to train)."""
    import dataclasses

    from archsearch.search.baselines import design_baselines
    from archsearch.search.driver import run_search
    from archsearch.search.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(options.storage))
    finetuned: dict[int, float] = {}
    by = inputs.recipe.supernet.finalists_by
    if inputs.recipe.supernet.shortlist:
        from archsearch.search.shortlist import pick_by_finetuning

        shortlist = pick_finalists(study, inputs.recipe.supernet.shortlist, by)
        finalists, finetuned = pick_by_finetuning(
            study, shortlist, inputs, count, options.workers, console.print
        )
        how = f"the fine-tuned shortlist's {len(finalists)} finalists"
    else:
        finalists = pick_finalists(study, count, by)
        if by != "family":
            how = f"the supernet front's {len(finalists)} finalists"
        elif len(finalists) > 1:
            how = f"the {len(finalists)} attention families' best"
        else:
            how = "the best attention family's best"
    if not finalists:
        return None
    name = companion_name(study_name)
    recipe = check_finalist_recipe(inputs.recipe)
    trained_options = dataclasses.replace(
        options,
        evaluator=recipe.source or recipe.name,
        study=name,
        trials=len(finalists) + len(design_baselines(inputs.space, inputs.profile)),
    )
    trained_inputs = load_inputs(trained_options)
    study.set_user_attr(FINALISTS_ATTR, {"study": name, "evaluator": recipe.name})

    def queue(companion: optuna.Study) -> None:
        companion.set_user_attr(SUPERNET_STUDY_ATTR, study_name)
        queue_finalists(companion, finalists, finetuned)

    console.print(
        f"training {how} and the baselines from scratch with {recipe.name} (study '{name}')"
    )
    summary = run_search(trained_options, console=console, inputs=trained_inputs, queue=queue)
    settings = inputs.recipe.supernet
    if summary.interrupted or not settings.refine:
        return summary
    from archsearch.search.refine import run_refine

    refined = run_refine(
        trained_options,
        trained_inputs,
        name,
        settings.refine,
        settings.refine_rounds,
        console,
        settings.refine_by,
        settings.refine_from,
        _swap_scorer(inputs, options.workers, console.print),
    )
    if refined is None:
        return summary
    return dataclasses.replace(refined, wall_s=summary.wall_s + refined.wall_s)
