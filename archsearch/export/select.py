"""Which trial ``--trial`` names: ``best`` or a trial number."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from archsearch.errors import InputError
from archsearch.search import trial_attrs as attrs
from archsearch.search.trials import best_trial, quality

BEST = "best"


def best_meaning(study: optuna.Study) -> str:
    """What ``best`` means in this study: the best quality (lowest val_bpb, or highest proxy
    score) among trials evaluated in full within every budget, worded for its objective."""
    measured = quality(study)
    done = "trained to the end" if measured.trains else "scored"
    return f"{measured.best_word} {measured.name} among trials {done} within every budget"


def select_trial(study: optuna.Study, spec: str | int) -> FrozenTrial:
    """``best`` (see ``best_meaning``; baselines included) or the trial numbered ``spec``.

    A numbered trial must carry an architecture; it may be any status (a baseline, or a design
    over budget that the user wants anyway): its provenance records the status.
    """
    if str(spec).strip().lower() == BEST:
        trial = best_trial(study)
        if trial is None:
            raise InputError(
                f"study '{study.study_name}' has no trial trained within budget yet", key="--trial"
            )
        return trial
    try:
        number = int(str(spec))
    except ValueError:
        raise InputError(f"must be 'best' or a trial number, got {spec!r}", key="--trial") from None
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        last = len(trials) - 1
        raise InputError(f"no trial {number} (trials are 0..{last})", key="--trial")
    trial = trials[number]
    if not isinstance(trial.user_attrs.get(attrs.ARCH), dict):
        raise InputError(f"trial {number} has no architecture to export", key="--trial")
    return trial
