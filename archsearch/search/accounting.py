"""What a search cost, stored in the study: per trial, per run of the driver, in total.

Per trial (user attributes written by the searcher): ``wall_s`` and ``cpu_s`` measured by the
worker around the candidate's build and training (partial for stopped and interrupted trials).

Per run (study user attribute ``search_runs``, one entry per ``archsearch run``): the driver's
wall and CPU seconds, trained candidates, how it ended and which Ray cluster it used. The entry
is rewritten after every finished trial, so a driver killed with SIGKILL loses at most the time
since its last finished trial (the next run marks its entry ``killed``).

Totals (study user attributes), recomputed from the above on every update so they stay right
across resumed runs: ``search_wall_s`` (driver wall, all runs), ``search_driver_cpu_s``,
``search_trial_cpu_s`` and ``search_trial_wall_s`` (sums over trials), ``search_cpu_s``
(trials + driver). Ray's own daemons (raylet, GCS) are not counted.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import optuna

from archsearch.search import trial_attrs as attrs

RUNS = "search_runs"


class RunLedger:
    """The cost record of one driver run, kept up to date in the study."""

    def __init__(self, study: optuna.Study, **about: Any):
        self.study = study
        self._wall0 = time.perf_counter()
        self._cpu0 = time.process_time()
        runs = list(study.user_attrs.get(RUNS, []))
        for run in runs:  # a driver that never closed its entry was killed (one driver a study)
            if run.get("status") == "running":
                run["status"] = "killed"
        study.set_user_attr(RUNS, runs)
        self.index = len(runs)
        self.entry: dict[str, Any] = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "running",
            "wall_s": 0.0,
            "driver_cpu_s": 0.0,
            **about,
        }
        self.update()

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self._wall0

    def update(self, totals: bool = True, **changes: Any) -> None:
        """Write this run's entry and (unless ``totals=False``) recompute the study's totals.

        After each trial the entry alone is enough (one write): the totals are recomputed
        at the start and the end of every run, so a killed run's are put right by the next.
        """
        self.entry.update(changes)
        self.entry["wall_s"] = round(self.wall_s, 3)
        self.entry["driver_cpu_s"] = round(time.process_time() - self._cpu0, 3)
        runs = list(self.study.user_attrs.get(RUNS, []))
        runs[self.index : self.index + 1] = [self.entry]
        self.study.set_user_attr(RUNS, runs)
        if totals:
            write_totals(self.study, runs)


def write_totals(study: optuna.Study, runs: list[dict[str, Any]]) -> dict[str, float]:
    """Study-level totals from the run entries and every trial's own figures."""
    trials = study.get_trials(deepcopy=False)
    trial_cpu = sum(t.user_attrs.get(attrs.CPU_S, 0.0) for t in trials)
    driver_cpu = sum(run.get("driver_cpu_s", 0.0) for run in runs)
    totals = {
        "search_wall_s": sum(run.get("wall_s", 0.0) for run in runs),
        "search_driver_cpu_s": driver_cpu,
        "search_trial_cpu_s": trial_cpu,
        "search_trial_wall_s": sum(t.user_attrs.get(attrs.WALL_S, 0.0) for t in trials),
        "search_cpu_s": trial_cpu + driver_cpu,
    }
    for key, value in totals.items():
        study.set_user_attr(key, round(value, 3))
    return totals
