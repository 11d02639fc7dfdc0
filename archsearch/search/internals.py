"""The private attributes of Ray Tune and Optuna that archsearch reads, each behind one function.

- Ray Tune's ``OptunaSearch`` keeps its Optuna study in ``_ot_study``, the live Optuna trial of
  each Tune trial in ``_ot_trials`` (by Tune trial id) and the Tune ids it has already told
  Optuna about in ``_completed_trials``. ``ArchSearcher`` needs all three to judge, reject and
  close trials itself; Ray offers no public access.
- Optuna's ``Trial`` and ``FrozenTrial`` keep their storage id in ``_trial_id``, which writing a
  system attribute (the legacy constraints list) and reopening a trial need.

``tests/test_internals.py`` fails loudly, naming the attribute, when an upgrade renames one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from ray.tune.search.optuna import OptunaSearch


def optuna_study(searcher: OptunaSearch) -> optuna.Study:
    """The study an ``OptunaSearch`` asks and tells."""
    study: optuna.Study = searcher._ot_study
    return study


def live_trials(searcher: OptunaSearch) -> dict[str, optuna.Trial]:
    """Optuna trials by Tune trial id, from ask until the searcher forgets them."""
    trials: dict[str, optuna.Trial] = searcher._ot_trials
    return trials


def told_trials(searcher: OptunaSearch) -> set[str]:
    """Tune trial ids already told to Optuna (``on_trial_complete`` ignores them)."""
    told: set[str] = searcher._completed_trials
    return told


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial | Any) -> int:
    """A trial's id in its storage (not its number in the study)."""
    return int(trial._trial_id)
