"""The private Ray Tune and Optuna attributes archsearch reads still exist and mean the same.

If an upgrade renames one, this fails first, naming it and the installed version (see
archsearch/search/internals.py).
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from archsearch.search.internals import (
    LibraryChanged,
    installed,
    live_trials,
    optuna_study,
    told_trials,
    trial_id,
)


def _searcher() -> OptunaSearch:
    def space(trial: optuna.Trial) -> dict[str, float]:
        return {"x": trial.suggest_float("x", 0.0, 1.0)}

    return OptunaSearch(space=space, metric=["loss"], mode=["min"], seed=0)


def test_optuna_search_keeps_its_study_and_trials_where_we_read_them() -> None:
    searcher = _searcher()
    for name in ("_ot_study", "_ot_trials", "_completed_trials"):
        assert hasattr(searcher, name), (
            f"ray {installed('ray')}'s OptunaSearch has no {name} any more: "
            "update archsearch/search/internals.py"
        )
    suggested = searcher.suggest("tune-trial-1")
    assert suggested is not None and 0.0 <= suggested["x"] <= 1.0
    study = optuna_study(searcher)
    assert isinstance(study, optuna.Study)
    live = live_trials(searcher)
    assert set(live) == {"tune-trial-1"}
    assert isinstance(live["tune-trial-1"], optuna.Trial)
    assert study.trials[0].state == TrialState.RUNNING
    searcher.on_trial_complete("tune-trial-1", result={"loss": 0.5})
    assert "tune-trial-1" in told_trials(searcher)
    assert study.trials[0].state == TrialState.COMPLETE and study.trials[0].values == [0.5]


def test_a_trials_storage_id_writes_and_reopens_that_trial() -> None:
    study = optuna.create_study()
    study.ask()
    trial = study.ask()
    frozen = study.trials[1]
    for owner in (trial, frozen):
        assert hasattr(owner, "_trial_id"), (
            f"optuna {installed('optuna')}'s {type(owner).__name__} has no _trial_id any more: "
            "update archsearch/search/internals.py"
        )
    assert trial_id(trial) == trial_id(frozen)
    trial.storage.set_trial_system_attr(trial_id(trial), "probe", [1.0])
    assert study.trials[1].system_attrs["probe"] == [1.0]
    again = optuna.Trial(study, trial_id(frozen))
    again.set_user_attr("reopened", True)
    assert study.trials[1].user_attrs == {"reopened": True}
    assert study.trials[0].user_attrs == {}


def test_a_renamed_attribute_stops_with_one_line_naming_it_and_the_version() -> None:
    """What a user sees after an upgrade that renamed one: the attribute and the version."""
    searcher = _searcher()
    del searcher._ot_trials  # as a Ray release that renamed it would leave the searcher
    with pytest.raises(LibraryChanged) as info:
        live_trials(searcher)
    message = str(info.value)
    assert f"ray {installed('ray')}" in message and "_ot_trials" in message
    assert installed("ray")[0].isdigit()  # the real version, read from the installed package
