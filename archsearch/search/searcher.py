"""Ray Tune's OptunaSearch, taught to reject candidates over budget before they reach a worker.

A rejected candidate never costs a Ray trial: the driver asks Optuna for the next one at once.
Every trial lands in the study with what the driver knows about it as user attributes
(``status``, ``reason``, ``macs``, ``params``, ``arch``) and budget constraint values that both
Optuna and optuna-dashboard read.

Only candidates trained to their full budget (or scored, with a zero-cost proxy recipe) are
COMPLETE, so the Pareto front of Optuna (``study.best_trials``) and of optuna-dashboard (which
ignores constraints when it picks its best trials) can only hold feasible, fully evaluated
candidates:

- over budget: PRUNED with positive constraint values (TPE learns from them as infeasible);
- stopped early by the scheduler: PRUNED, status ``stopped``, partial figures as attributes;
- failed (exception, NaN, out of memory) or invalid: FAIL with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import cloudpickle
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from archsearch.profiles import Profile
from archsearch.search import trial_attrs as attrs
from archsearch.search.constraints import record_constraints
from archsearch.search.internals import live_trials, optuna_study, told_trials
from archsearch.search.quality import BLEND_ATTR, DEFAULT_QUALITY, Quality
from archsearch.search.resume import LOST, close_interrupted, lost_before
from archsearch.search.samplers import GridSampler
from archsearch.search.verdict import Verdict, judge
from archsearch.space import SearchSpace

log = logging.getLogger(__name__)
MAX_REPEATS = 50  # proposals in a row of already-trained architectures before the search ends

# a blended score's parts: bpb and the proxy's score
BLENDED_ATTRS = (DEFAULT_QUALITY.name, BLEND_ATTR)
RESULT_ATTRS = (
    attrs.WALL_S,
    attrs.CPU_S,
    attrs.TRAIN_BPB,
    attrs.VAL_ACCURACY,
    attrs.TOKENS,
    attrs.STEPS,
    attrs.DATA_FINGERPRINT,
    attrs.RAY_NODE,
    attrs.SELECTION_TOKENS,  # a recipe's active selection: what scoring its pools cost
    attrs.SELECTION_MACS,
    attrs.SELECTION_S,
    attrs.INHERITED_BPB,  # a supernet score less its family offsets: the raw score, the offset
    attrs.FAMILY_OFFSET,
)
PARTIAL_ATTRS = (
    attrs.WALL_S,
    attrs.CPU_S,
    attrs.TOKENS,
    attrs.RAY_NODE,
)  # kept from an interrupted trial


class ArchSearcher(OptunaSearch):
    """Multi-objective OptunaSearch over a ``SearchSpace`` with a profile's hard budgets.

    The first objective is ``quality`` (``val_bpb`` minimised, or a zero-cost proxy maximised;
    see quality.py), the others the profile's cost objectives, minimised. With the grid sampler
    the search ends when every configuration has been taken.
    """

    def __init__(
        self,
        space: SearchSpace,
        profile: Profile,
        *,
        sampler: optuna.samplers.BaseSampler,
        storage: optuna.storages.BaseStorage,
        study_name: str,
        max_rejections: int = 2000,
        data_fingerprint: str | None = None,
        quality: Quality = DEFAULT_QUALITY,
    ):
        self.arch_space = space
        self.profile = profile
        self.grid = sampler if isinstance(sampler, GridSampler) else None
        self.max_rejections = max_rejections if self.grid is None else len(self.grid.configs) + 1
        self.data_fingerprint = data_fingerprint
        self.quality = quality
        self.objectives = [quality.name, *profile.objectives]
        self.rejected = {"invalid": 0, "infeasible": 0, "duplicate": 0}
        self.lost = 0  # trials whose worker died under them, closed and queued again
        self.exhausted = False
        self._verdicts: dict[str, Verdict] = {}
        self._curves: dict[str, list[dict[str, Any]]] = {}
        self._last: dict[str, dict[str, Any]] = {}
        super().__init__(
            space=self._define_by_run,
            metric=list(self.objectives),
            mode=[quality.mode] + ["min"] * len(profile.objectives),
            sampler=sampler,
            storage=storage,
            study_name=study_name,
        )

    @property
    def study(self) -> optuna.Study:
        return optuna_study(self)

    def _define_by_run(self, trial: optuna.Trial) -> dict[str, Any]:
        return {"arch": self.arch_space.suggest(trial)}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        repeats = 0
        for _ in range(self.max_rejections):
            if self._grid_done():
                self.exhausted = True
                return Searcher.FINISHED
            values = super().suggest(trial_id)["arch"]
            if self.arch_space.task != "causal_lm":  # ArchConfig.from_dict's default task
                values = {**values, "task": self.arch_space.task}
            trial = live_trials(self)[trial_id]
            verdict = judge(self.arch_space, self.profile, values)
            twin = self._trained_twin(values) if verdict.trainable else None
            if twin is not None:
                self._record_duplicate(trial, verdict, twin)
                del live_trials(self)[trial_id]
                repeats += 1
                if repeats >= MAX_REPEATS:  # the sampler only proposes what it has seen
                    log.warning("%d proposals in a row were already trained; stopping", repeats)
                    self.exhausted = True
                    return Searcher.FINISHED
                continue
            if verdict.trainable:
                self._verdicts[trial_id] = verdict
                self._record_known(trial, verdict, status=attrs.TRAINING)
                config = {"arch": values, "objectives": self._cost_objectives(verdict)}
                baseline = trial.user_attrs.get(attrs.BASELINE)
                if baseline:
                    config[attrs.BASELINE] = baseline
                return config
            self._reject(trial, verdict)
            del live_trials(self)[trial_id]
        log.warning("no trainable candidate in %d proposals; stopping", self.max_rejections)
        self.exhausted = True
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Keep the learning curve and the latest figures (multi-objective: no trial.report)."""
        self._last[trial_id] = result
        name = self.quality.name
        if self.quality.trains and not result.get("final") and name in result:
            point = {"tokens": result.get("tokens"), name: result[name]}
            self._curves.setdefault(trial_id, []).append(point)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        trial = live_trials(self).get(trial_id)
        if trial is None or trial_id in told_trials(self):
            return
        result = result or self._last.get(trial_id) or {}
        for key in RESULT_ATTRS + (BLENDED_ATTRS if self.quality.blend else ()):
            if key in result:
                trial.set_user_attr(key, result[key])
        curve = self._curves.pop(trial_id, [])
        name = self.quality.name
        if self.quality.trains and not result.get("failed") and name in result:
            # The final report, or the one a scheduler stopped on (Tune hands that one to
            # on_trial_complete only). A proxy has one value and no curve.
            point = {"tokens": result.get("tokens"), name: result[name]}
            if not curve or curve[-1] != point:
                curve.append(point)
        if curve:
            trial.set_user_attr(attrs.CURVE, curve)
        self._last.pop(trial_id, None)
        verdict = self._verdicts.pop(trial_id, None)
        if verdict is not None and verdict.costs is not None:
            record_constraints(trial, self.profile.violations(verdict.costs, verdict.config))
        if error and not result.get("failed") and self._close_lost(trial_id, trial, result):
            return
        failure = result.get("failed") or ("worker error" if error else None)
        kind = result.get("failure") or ("error" if error else None)
        fingerprint = result.get("data_fingerprint")
        if failure is None and fingerprint and self.data_fingerprint not in (None, fingerprint):
            failure = (
                f"the worker trained on other data ({fingerprint}, study: {self.data_fingerprint})"
            )
            kind = "data_mismatch"
        if failure is None and not result.get("final", False):
            # Stopped by a scheduler: partial-budget values must never pose as complete.
            trial.set_user_attr(attrs.STATUS, attrs.STOPPED)
            trial.set_user_attr(attrs.REASON, "stopped early by the scheduler")
            if name in result:
                trial.set_user_attr(f"{name}_at_stop", result[name])
            self._close(trial_id, trial, TrialState.PRUNED)
            return
        if failure is not None:
            trial.set_user_attr(attrs.STATUS, attrs.FAILED)
            trial.set_user_attr(attrs.FAILURE, kind)
            trial.set_user_attr(attrs.REASON, str(failure))
            self._close(trial_id, trial, TrialState.FAIL)
            return
        trial.set_user_attr(attrs.STATUS, attrs.COMPLETE)
        trial.set_user_attr(attrs.DIVERGED, bool(result.get("diverged", False)))
        super().on_trial_complete(trial_id, result=result, error=error)

    def _close_lost(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> bool:
        """A Tune error with no failure reported by the trainable (which catches the
        candidate's own exceptions) means its worker died: a lost node or a killed process.
        Close the trial as interrupted and queue it again, as a killed driver's trials are;
        returns False (recorded as failed) if it is the retry of a trial lost before."""
        frozen = next(t for t in self.study.get_trials(deepcopy=False) if t.number == trial.number)
        if lost_before(self.study, frozen):
            return False
        partial = {key: result[key] for key in PARTIAL_ATTRS if key in result}
        close_interrupted(self.study, frozen, LOST, partial)
        told_trials(self).add(trial_id)
        self.lost += 1
        log.warning("trial %d: %s; queued again", trial.number, LOST)
        return True

    def close_open_trials(self, reason: str) -> int:
        """Close trials handed to workers that Tune stopped without completing (Ctrl-C,
        ``--timeout``): FAIL as interrupted, queued again. Returns how many."""
        running = {
            frozen.number: frozen
            for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        closed = 0
        for trial_id, trial in list(live_trials(self).items()):
            frozen = running.get(trial.number)
            if trial_id in told_trials(self) or frozen is None:
                continue
            last = self._last.get(trial_id, {})
            partial = {key: last[key] for key in PARTIAL_ATTRS if key in last}
            close_interrupted(self.study, frozen, reason, partial)
            told_trials(self).add(trial_id)
            closed += 1
        return closed

    def save(self, checkpoint_path: str) -> None:
        """Tune checkpoints searchers with plain pickle, which cannot hold the compiled space's
        closures; cloudpickle can. (Resuming a study does not need this: the study is the record.)
        """
        with open(checkpoint_path, "wb") as handle:
            cloudpickle.dump(self.__dict__.copy(), handle)

    # ---- bookkeeping -------------------------------------------------------------------------

    def _grid_done(self) -> bool:
        """Whether a grid has handed out every configuration (tried, or being tried)."""
        if self.grid is None or self.grid.remaining(self.study):
            return False
        # Queued trials (baselines, retries of interrupted ones) still run.
        return not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))

    def _close(self, trial_id: str, trial: optuna.Trial, state: TrialState) -> None:
        optuna_study(self).tell(trial, state=state)
        told_trials(self).add(trial_id)

    def _cost_objectives(self, verdict: Verdict) -> dict[str, float]:
        assert verdict.costs is not None
        return {
            name: self.profile.metric(name, verdict.costs, verdict.config)
            for name in self.profile.objectives
        }

    def _record_known(self, trial: optuna.Trial, verdict: Verdict, status: str) -> None:
        trial.set_user_attr(attrs.STATUS, status)
        trial.set_user_attr(attrs.ARCH, verdict.values)
        if verdict.costs is not None:
            costs = verdict.costs
            trial.set_user_attr(attrs.MACS, costs.macs)
            trial.set_user_attr(attrs.PARAMS, costs.counted_params)
            trial.set_user_attr(attrs.TOTAL_PARAMS, costs.params)
            trial.set_user_attr(attrs.MACS_BY_PART, costs.macs_by_part)

    def _trained_twin(self, values: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
        """A completed trial of exactly this architecture, if any.

        Training is deterministic (the recipe's seed), so training the same architecture again
        would reproduce its result: samplers that propose a point twice get the answer for free.
        """
        for trial in optuna_study(self).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if (
                trial.user_attrs.get(attrs.STATUS) == attrs.COMPLETE
                and trial.user_attrs.get(attrs.ARCH) == values
            ):
                return trial
        return None

    def _record_duplicate(
        self, trial: optuna.Trial, verdict: Verdict, twin: optuna.trial.FrozenTrial
    ) -> None:
        """COMPLETE with the twin's values (so the sampler learns), marked so reports skip it."""
        self.rejected["duplicate"] += 1
        self._record_known(trial, verdict, status=attrs.DUPLICATE)
        trial.set_user_attr(attrs.DUPLICATE_OF, twin.number)
        assert verdict.costs is not None
        record_constraints(trial, self.profile.violations(verdict.costs, verdict.config))
        optuna_study(self).tell(trial, list(twin.values))

    def _reject(self, trial: optuna.Trial, verdict: Verdict) -> None:
        """Over budget: PRUNED, never trained, constraints > 0; invalid: FAIL."""
        self._record_known(
            trial, verdict, status=attrs.INVALID if verdict.invalid else attrs.INFEASIBLE
        )
        trial.set_user_attr(attrs.REASON, verdict.reason)
        if verdict.invalid:
            self.rejected["invalid"] += 1
            optuna_study(self).tell(trial, state=TrialState.FAIL)
            return
        assert verdict.costs is not None
        self.rejected["infeasible"] += 1
        record_constraints(trial, self.profile.violations(verdict.costs, verdict.config))
        optuna_study(self).tell(trial, state=TrialState.PRUNED)
