"""Continue an interrupted study: nothing lost, nothing counted twice.

A trial that was handed to a worker but never finished (Ctrl-C, ``--timeout``, or a driver
killed outright) is closed as FAIL with status ``interrupted``, and its parameters are queued
again so the same candidate is trained once, in a fresh trial that names the one it replaces
(``retry_of``). The driver does this itself when it stops early; a driver killed with SIGKILL
leaves RUNNING trials that the next run closes the same way before it starts.

Both steps are idempotent: the retry is queued only if no trial names the interrupted one yet,
and before the interrupted trial is closed, so a kill between the two steps loses nothing and
queues nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from archsearch.search import trial_attrs as attrs
from archsearch.search.internals import trial_id

TRAINED = (attrs.COMPLETE, attrs.FAILED, attrs.STOPPED)
# What an enqueued candidate was enqueued as (a baseline, a supernet finalist, a refine
# mutation): its retry carries it too, so reports and resumed stages still know it.
IDENTITY = (
    attrs.BASELINE,
    attrs.SUPERNET_BPB,
    attrs.SUPERNET_TRIAL,
    attrs.FINETUNED_BPB,
    attrs.MUTATION_OF,
    attrs.REFINE_ROUND,
)
WORKER_STATUSES = (attrs.TRAINING, *TRAINED)  # statuses of trials a worker has run
KILLED = "the search was interrupted while this trial ran"
# Its worker process died under it (its Ray node lost, or the process killed): not the
# candidate's fault, so it is queued again, once; lost a second time, it is recorded as failed.
LOST = "the worker running this trial was lost (its Ray node or process died)"


def lost_before(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> bool:
    """Whether ``frozen`` is the retry of a trial whose worker was lost."""
    original = frozen.user_attrs.get(attrs.RETRY_OF)
    if original is None:
        return False
    return any(
        t.number == original and t.user_attrs.get(attrs.REASON) == LOST
        for t in study.get_trials(deepcopy=False)
    )


def trained_count(study: optuna.Study) -> int:
    """Candidates that reached a worker and ended (finished, failed or stopped early)."""
    return sum(
        1
        for trial in study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        )
        if trial.user_attrs.get(attrs.STATUS) in TRAINED
    )


def close_interrupted(
    study: optuna.Study,
    frozen: optuna.trial.FrozenTrial,
    reason: str,
    partial: Mapping[str, Any] | None = None,
) -> bool:
    """Close one RUNNING trial as interrupted; returns True if its candidate was queued again.

    ``partial`` holds what the worker had measured before it stopped (wall_s, cpu_s), so the
    search's cost accounts for the interrupted work.
    """
    trial = optuna.Trial(study, trial_id(frozen))
    queued = False
    was = frozen.user_attrs.get(attrs.STATUS) or "sampling"
    # A worker had it: still training, or finished with its result not yet told to Optuna.
    if was in WORKER_STATUSES:
        if not any(t.user_attrs.get(attrs.RETRY_OF) == frozen.number for t in study.get_trials()):
            retry: dict[str, Any] = {attrs.RETRY_OF: frozen.number}
            for key in IDENTITY:
                if key in frozen.user_attrs:
                    retry[key] = frozen.user_attrs[key]
            study.enqueue_trial(frozen.params, user_attrs=retry)
        queued = True
    for key, value in (partial or {}).items():
        trial.set_user_attr(key, value)
    # What it was doing: with a worker ("training", or a result not yet told: queued again), or
    # still being sampled or judged by the driver ("sampling", "infeasible", "invalid").
    trial.set_user_attr(attrs.INTERRUPTED_WHILE, was)
    trial.set_user_attr(attrs.STATUS, attrs.INTERRUPTED)
    trial.set_user_attr(attrs.REASON, reason)
    study.tell(frozen.number, state=TrialState.FAIL)
    return queued


def recover_interrupted(study: optuna.Study) -> int:
    """Close RUNNING trials left by a dead driver; returns how many were queued again."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return sum(close_interrupted(study, frozen, KILLED) for frozen in running)
