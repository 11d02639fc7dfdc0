"""Which trials a confirm retrains: front points spread over the cost range, and the baselines.

The front's neighbours of the best point differ little from it; a confirm that retrains K
points evenly spread over the front's MACs (the best-quality point always among them) says
whether the search won across the trade-off, not only at one end of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from archsearch.errors import InputError
from archsearch.search import trial_attrs as attrs
from archsearch.search import trials as select
from archsearch.search.trials import front_trials, spread

BASELINE_NAMES = {"transformer": "Transformer", "lite_transformer": "Lite Transformer"}


@dataclass(frozen=True)
class Model:
    """A model to confirm: its study trial, how reports name it, what to build, what it cost.

    ``score`` is the study's cheap quality as a loss (lower is better; None when the trial has
    none), kept to measure how well the search's score ranked the confirmed models.
    """

    trial: int
    name: str
    arch: dict[str, Any]
    macs: float
    baseline: str | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "name": self.name,
            "baseline": self.baseline,
            "macs": self.macs,
            "score": self.score,
            "arch": self.arch,
        }


def select_models(study: optuna.Study, top: int) -> list[Model]:
    """The front candidates to confirm (by increasing MACs), then the study's baselines."""
    if top < 1:
        raise InputError(f"must be >= 1, got {top}", key="--top")
    if not select.usable_trials(study):
        raise InputError(
            f"study '{study.study_name}' has no trial trained within budget yet: nothing to "
            "confirm (run `archsearch run` first)",
            key="--study",
        )
    candidates = [t for t in front_trials(study) if select.baseline_name(t) is None]
    candidates.sort(key=lambda t: (t.user_attrs.get(attrs.MACS, math.inf), t.number))
    models = []
    if candidates:
        best = select.best_trial(study, baselines=False)
        numbers = [t.number for t in candidates]
        at = numbers.index(best.number) if best is not None and best.number in numbers else 0
        models = [_model(study, candidates[i]) for i in spread(len(candidates), top, at)]
    for key, trial in sorted(select.baseline_trials(study).items(), key=_baseline_order):
        if attrs.ARCH in trial.user_attrs:
            models.append(_model(study, trial, baseline=key))
    return models


def _baseline_order(item: tuple[str, Any]) -> tuple[int, str]:
    order = list(BASELINE_NAMES)
    return (order.index(item[0]) if item[0] in order else len(order), item[0])


def _model(
    study: optuna.Study, trial: optuna.trial.FrozenTrial, baseline: str | None = None
) -> Model:
    score = None
    if select.is_usable(trial):
        score = select.losses(study, trial).get(select.quality(study).name)
    name = BASELINE_NAMES.get(baseline, baseline.replace("_", " ")) if baseline else None
    return Model(
        trial=trial.number,
        name=name or f"trial {trial.number}",
        arch=dict(trial.user_attrs[attrs.ARCH]),
        macs=float(trial.user_attrs.get(attrs.MACS, math.nan)),
        baseline=baseline,
        score=score,
    )
