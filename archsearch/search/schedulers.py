"""Early stopping by ``--scheduler``: Ray Tune's ASHA on the evaluator's intermediate val_bpb.

The trainable reports val_bpb at each of the recipe's ``eval_points``, the last one marked
``final``; the searcher records a trial whose last report is not final as PRUNED, so a stopped
candidate never reaches the Pareto front with partial-budget values.

ASHA ranks on one metric. In a multi-objective search that metric (val_bpb) favours large
models, so ASHA tends to stop the small, cheap candidates that make the low-cost end of the
front; that is why it is not the default (``none``). Use it when quality matters more than
the trade-off, or with a profile whose budget leaves little room in cost.

A zero-cost proxy recipe scores each candidate once, without training: there is nothing to stop
early, so every scheduler is off for it.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from archsearch.evaluate.recipe import Recipe
from archsearch.search.defaults import DEFAULT_SCHEDULER, SCHEDULERS
from archsearch.search.quality import quality_of

__all__ = ["DEFAULT_SCHEDULER", "SCHEDULERS", "BaselineKeepingASHA", "make_scheduler"]
REDUCTION_FACTOR = 2  # keep the better half at each rung: recipes have only a few eval points


class BaselineKeepingASHA(AsyncHyperBandScheduler):
    """ASHA that records the baselines' results at every rung but never stops them.

    A baseline is a reference for the comparison table; it is trained to the full budget.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and trial.config.get("baseline"):
            return TrialScheduler.CONTINUE
        return action


def make_scheduler(name: str, recipe: Recipe) -> TrialScheduler | None:
    """The Tune scheduler for ``--scheduler name``; None means run every trial to the end."""
    if name == "none" or not recipe.trains_candidates or recipe.eval_points < 2:
        return None
    quality = quality_of(recipe)
    if name == "asha":
        return BaselineKeepingASHA(
            time_attr="training_iteration",  # one report per eval point
            metric=quality.name,
            mode=quality.mode,
            max_t=recipe.eval_points,
            grace_period=1,
            reduction_factor=REDUCTION_FACTOR,
        )
    raise ValueError(f"unknown scheduler {name!r}")
