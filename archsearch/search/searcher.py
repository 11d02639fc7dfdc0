"""Ray Tune's OptunaSearch, taught to reject candidates over budget before they reach a worker.

A rejected candidate never costs a Ray trial: the driver asks Optuna for the next one at once.
Every trial lands in the study with what the driver knows about it as user attributes
(``status``, ``reason``, ``macs``, ``params``, ``arch``) and, for budget checks, constraint
values that both Optuna and optuna-dashboard read.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from ray import cloudpickle
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from archsearch.profiles import Profile
from archsearch.search.constraints import record_constraints
from archsearch.search.trainable import QUALITY
from archsearch.search.verdict import Verdict, judge
from archsearch.space import SearchSpace

log = logging.getLogger(__name__)


class ArchSearcher(OptunaSearch):
    """Multi-objective OptunaSearch over a ``SearchSpace`` with a profile's hard budgets."""

    def __init__(
        self,
        space: SearchSpace,
        profile: Profile,
        *,
        sampler: optuna.samplers.BaseSampler,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        max_rejections: int = 2000,
        placeholder_quality: float = 8.0,
    ):
        self.arch_space = space
        self.profile = profile
        self.max_rejections = max_rejections
        self.placeholder_quality = placeholder_quality
        self.objectives = [QUALITY, *profile.objectives]
        self.rejected = {"invalid": 0, "infeasible": 0}
        self.exhausted = False
        self._verdicts: dict[str, Verdict] = {}
        super().__init__(
            space=self._define_by_run,
            metric=list(self.objectives),
            mode=["min"] * len(self.objectives),
            sampler=sampler,
            storage=storage,
            study_name=study_name,
        )

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def _define_by_run(self, trial: optuna.Trial) -> dict[str, Any]:
        return {"arch": self.arch_space.suggest(trial)}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for _ in range(self.max_rejections):
            values = super().suggest(trial_id)["arch"]
            trial = self._ot_trials[trial_id]
            verdict = judge(self.arch_space, self.profile, values)
            if verdict.trainable:
                self._verdicts[trial_id] = verdict
                self._record_known(trial, verdict, status="training")
                return {"arch": values, "objectives": self._cost_objectives(verdict)}
            self._reject(trial, verdict)
            del self._ot_trials[trial_id]
        log.warning("no trainable candidate in %d proposals; stopping", self.max_rejections)
        self.exhausted = True
        return Searcher.FINISHED

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is None or trial_id in self._completed_trials:
            return
        result = result or {}
        for key in ("wall_s", "cpu_s", "train_bpb", "tokens", "steps", "data_fingerprint"):
            if key in result:
                trial.set_user_attr(key, result[key])
        verdict = self._verdicts.pop(trial_id, None)
        if verdict is not None and verdict.costs is not None:
            record_constraints(trial, self.profile.violations(verdict.costs))
        failure = result.get("failed") or ("worker error" if error else None)
        if failure is None and not result.get("final", False):
            # Stopped by a scheduler: partial-budget values must never pose as complete.
            trial.set_user_attr("status", "stopped")
            trial.set_user_attr("reason", "stopped early by the scheduler")
            self._ot_study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if failure is not None:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("reason", str(failure))
            self._ot_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        trial.set_user_attr("status", "complete")
        trial.set_user_attr("diverged", bool(result.get("diverged", False)))
        super().on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        """Tune checkpoints searchers with plain pickle, which cannot hold the compiled space's
        closures; cloudpickle can. (Resuming a study does not need this: the study is the record.)
        """
        with open(checkpoint_path, "wb") as handle:
            cloudpickle.dump(self.__dict__.copy(), handle)

    # ---- bookkeeping -------------------------------------------------------------------------

    def _cost_objectives(self, verdict: Verdict) -> dict[str, float]:
        assert verdict.costs is not None
        return {name: self.profile.metric(name, verdict.costs) for name in self.profile.objectives}

    def _record_known(self, trial: optuna.Trial, verdict: Verdict, status: str) -> None:
        trial.set_user_attr("status", status)
        trial.set_user_attr("arch", verdict.values)
        if verdict.costs is not None:
            costs = verdict.costs
            trial.set_user_attr("macs", costs.macs)
            trial.set_user_attr("params", costs.counted_params)
            trial.set_user_attr("total_params", costs.params)
            trial.set_user_attr("macs_by_part", costs.macs_by_part)

    def _reject(self, trial: optuna.Trial, verdict: Verdict) -> None:
        if verdict.invalid:
            self.rejected["invalid"] += 1
            self._record_known(trial, verdict, status="invalid")
            trial.set_user_attr("reason", verdict.reason)
            self._ot_study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        assert verdict.costs is not None
        self.rejected["infeasible"] += 1
        self._record_known(trial, verdict, status="infeasible")
        trial.set_user_attr("reason", verdict.reason)
        trial.set_user_attr("note", f"not trained: {QUALITY} is the uniform-prediction placeholder")
        record_constraints(trial, self.profile.violations(verdict.costs))
        values = [self.placeholder_quality, *self._cost_objectives(verdict).values()]
        self._ot_study.tell(trial, values)


def uniform_bits(vocab_size: int) -> float:
    """Loss of predicting every token uniformly: what an untrained candidate is worth."""
    return math.log2(vocab_size)
