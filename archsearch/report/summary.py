"""What ``archsearch show`` reports about a study, as plain data (rendered elsewhere).

The front, the baselines, the best trial per objective and the search cost, each trial as a
``TrialRow`` so the terminal, Markdown and JSON views print the same numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from archsearch.search import trial_attrs as attrs
from archsearch.search import trials as select
from archsearch.search.quality import Quality
from archsearch.search.trials import front_trials


@dataclass(frozen=True)
class TrialRow:
    """One trial as reports show it; costs are those of the profile's counting convention."""

    number: int
    status: str
    baseline: str | None
    values: dict[str, float]
    macs: int | None
    params: int | None
    total_params: int | None
    arch: dict[str, Any]
    supernet_bpb: float | None = None  # a finalist's score in the supernet study it came from

    @classmethod
    def of(cls, study: optuna.Study, trial: FrozenTrial) -> TrialRow:
        recorded = trial.user_attrs
        return cls(
            number=trial.number,
            status=select.status(trial),
            baseline=select.baseline_name(trial),
            values=select.objective_values(study, trial),
            macs=recorded.get(attrs.MACS),
            params=recorded.get(attrs.PARAMS),
            total_params=recorded.get(attrs.TOTAL_PARAMS),
            arch=dict(recorded.get(attrs.ARCH, {})),
            supernet_bpb=recorded.get(attrs.SUPERNET_BPB),
        )

    @property
    def quality(self) -> float | None:
        """The quality objective's value (objectives are in the study's order, quality first)."""
        return next(iter(self.values.values()), None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchCost:
    """Compute spent and what became of the proposals (counts by archsearch status)."""

    cpu_s: float  # driver plus trials, when the driver recorded its own CPU time
    wall_s: float
    trial_cpu_s: float
    trial_wall_s: float
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def trained(self) -> int:
        """Proposals that reached a worker (the number ``archsearch run --trials`` counts)."""
        return sum(self.counts.get(s, 0) for s in ("complete", "failed", "stopped"))

    @property
    def rejected(self) -> int:
        """Proposals refused before training: over budget or not a valid architecture."""
        return self.counts.get("infeasible", 0) + self.counts.get("invalid", 0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "trained": self.trained, "rejected": self.rejected}


@dataclass(frozen=True)
class StudySummary:
    study: str
    objectives: list[str]
    directions: dict[str, str]  # objective -> minimize | maximize
    quality: Quality  # the quality objective: name, direction, proxy
    profile: dict[str, Any]
    evaluator: dict[str, Any]
    data_fingerprint: str | None
    archsearch_version: str | None
    front: list[TrialRow]
    baselines: dict[str, TrialRow]
    best: dict[str, TrialRow]
    cost: SearchCost
    lost: list[int] = field(
        default_factory=list
    )  # front trials a confirm found worse than a baseline

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "objectives": self.objectives,
            "directions": self.directions,
            "quality": self.quality.to_dict(),
            "profile": self.profile,
            "evaluator": self.evaluator,
            "data_fingerprint": self.data_fingerprint,
            "archsearch_version": self.archsearch_version,
            "front": [
                {**row.to_dict(), **({"lost_to_baseline": True} if row.number in self.lost else {})}
                for row in self.front
            ],
            "baselines": {name: row.to_dict() for name, row in self.baselines.items()},
            "best": {name: row.to_dict() for name, row in self.best.items()},
            "cost": self.cost.to_dict(),
        }


def search_cost(study: optuna.Study) -> SearchCost:
    recorded = study.user_attrs
    cpu_s = float(recorded.get("search_cpu_s", 0.0))
    return SearchCost(
        cpu_s=cpu_s,
        wall_s=float(recorded.get("search_wall_s", 0.0)),
        trial_cpu_s=float(recorded.get("search_trial_cpu_s", cpu_s)),
        trial_wall_s=float(recorded.get("search_trial_wall_s", 0.0)),
        counts=dict(sorted(select.status_counts(study).items())),
    )


def summarize(study: optuna.Study) -> StudySummary:
    recorded = study.user_attrs
    return StudySummary(
        study=study.study_name,
        objectives=select.objective_names(study),
        directions=select.objective_directions(study),
        quality=select.quality(study),
        profile=dict(recorded.get("profile", {})),
        evaluator=dict(recorded.get("evaluator", {})),
        data_fingerprint=recorded.get("data_fingerprint"),
        archsearch_version=recorded.get("archsearch_version"),
        front=[TrialRow.of(study, t) for t in front_trials(study)],
        baselines={n: TrialRow.of(study, t) for n, t in select.baseline_trials(study).items()},
        best={n: TrialRow.of(study, t) for n, t in select.best_per_objective(study).items()},
        cost=search_cost(study),
        lost=list((recorded.get("confirmed") or {}).get("lost", [])),
    )
