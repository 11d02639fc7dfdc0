"""The private attributes of Ray Tune and Optuna that archsearch reads, each behind one function.

- Ray Tune's ``OptunaSearch`` keeps its Optuna study in ``_ot_study``, the live Optuna trial of
  each Tune trial in ``_ot_trials`` (by Tune trial id) and the Tune ids it has already told
  Optuna about in ``_completed_trials``. ``ArchSearcher`` needs all three to judge, reject and
  close trials itself; Ray offers no public access.
- Optuna's ``Trial`` and ``FrozenTrial`` keep their storage id in ``_trial_id``, which writing a
  system attribute (the legacy constraints list) and reopening a trial need.

Each read goes through ``_private``: when an upgrade renames an attribute, archsearch stops
with one line naming the attribute and the installed library's version (``constraints.txt``
has the versions this was tested with), not an ``AttributeError`` deep in a search.
``tests/test_internals.py`` fails first, with the same line.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from ray.tune.search.optuna import OptunaSearch


class LibraryChanged(RuntimeError):
    """A private attribute archsearch reads is gone from the installed Ray Tune or Optuna."""


def optuna_study(searcher: OptunaSearch) -> optuna.Study:
    """The study an ``OptunaSearch`` asks and tells."""
    study: optuna.Study = _private(searcher, "_ot_study", "ray")
    return study


def live_trials(searcher: OptunaSearch) -> dict[str, optuna.Trial]:
    """Optuna trials by Tune trial id, from ask until the searcher forgets them."""
    trials: dict[str, optuna.Trial] = _private(searcher, "_ot_trials", "ray")
    return trials


def told_trials(searcher: OptunaSearch) -> set[str]:
    """Tune trial ids already told to Optuna (``on_trial_complete`` ignores them)."""
    told: set[str] = _private(searcher, "_completed_trials", "ray")
    return told


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial | Any) -> int:
    """A trial's id in its storage (not its number in the study)."""
    return int(_private(trial, "_trial_id", "optuna"))


def _private(owner: Any, name: str, library: str) -> Any:
    try:
        return getattr(owner, name)
    except AttributeError:
        raise LibraryChanged(
            f"{library} {installed(library)}: {type(owner).__name__} has no attribute {name}, "
            "which archsearch reads (archsearch/search/internals.py); install the version "
            "constraints.txt pins, or update internals.py for this one"
        ) from None


def installed(library: str) -> str:
    """The installed version of ``library`` (a distribution name), or 'unknown version'."""
    try:
        return version(library)
    except PackageNotFoundError:
        return "unknown version"
