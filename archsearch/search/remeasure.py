"""Time the final Pareto candidates alone, once the search is over.

During a search trials use the latency predictor: timing one candidate while others train
measures the load, not the model. When the search is done, each candidate on the front is
timed alone and both figures, predicted and measured, are stored in the study.
"""

from __future__ import annotations

from typing import Any

import optuna

from archsearch.config import ArchConfig
from archsearch.profiles import Profile
from archsearch.search import trial_attrs as attrs
from archsearch.search.constraints import is_feasible

STUDY_KEY = "remeasured_latency"


def remeasure_front(study: optuna.Study, profile: Profile) -> dict[str, dict[str, Any]]:
    """Measure every feasible Pareto trial's latency; store and return them by trial number.

    Finished trials cannot take new attributes in Optuna, so the figures go into the study's
    user attribute ``remeasured_latency``: ``{"<number>": {measured_ms, predicted_ms, ...}}``.
    """
    from archsearch.measure import remeasure_latency

    figures = dict(study.user_attrs.get(STUDY_KEY, {}))
    for trial in study.best_trials:
        if not is_feasible(trial) or trial.user_attrs.get(attrs.STATUS) != attrs.COMPLETE:
            continue
        config = ArchConfig.from_dict(trial.user_attrs[attrs.ARCH])
        result = remeasure_latency(config, profile)
        figures[str(trial.number)] = {
            key: result[key]
            for key in ("measured_ms", "predicted_ms", "clock", "tokens", "batch_size", "threads")
        }
    study.set_user_attr(STUDY_KEY, figures)
    return figures
