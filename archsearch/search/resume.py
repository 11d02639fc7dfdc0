"""Continue an interrupted study: nothing lost, nothing counted twice.

A run killed mid-trial leaves trials RUNNING in the study. On the next run, each one is closed
as FAIL with status ``interrupted`` and, if it had been handed to a worker, its parameters are
queued again so the same candidate is trained once, in a fresh trial.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

TRAINED = ("complete", "failed", "stopped")


def trained_count(study: optuna.Study) -> int:
    """Candidates that reached a worker and ended (finished, failed or stopped early)."""
    return sum(
        1
        for trial in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        )
        if trial.user_attrs.get("status") in TRAINED
    )


def recover_interrupted(study: optuna.Study) -> int:
    """Close RUNNING trials left by a dead driver; returns how many were queued again."""
    queued = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna.Trial(study, frozen._trial_id)
        was_training = frozen.user_attrs.get("status") == "training"
        trial.set_user_attr("status", "interrupted")
        trial.set_user_attr("reason", "the search was interrupted while this trial ran")
        study.tell(frozen.number, state=TrialState.FAIL)
        if was_training:
            study.enqueue_trial(frozen.params, user_attrs={"retry_of": frozen.number})
            queued += 1
    return queued
