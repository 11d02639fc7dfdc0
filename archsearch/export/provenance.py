"""Where an exported architecture came from: enough to trust, compare and reproduce it.

The storage URL is left out on purpose: a server URL can hold a password.
"""

from __future__ import annotations

import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from archsearch import __version__
from archsearch.search import trial_attrs as attrs
from archsearch.search import trials as select

TRAINING_ATTRS = ("train_bpb", "tokens", "steps", attrs.WALL_S, attrs.CPU_S, attrs.DIVERGED)
COST_ATTRS = (attrs.MACS, attrs.PARAMS, attrs.TOTAL_PARAMS, attrs.MACS_BY_PART)


def provenance(study: optuna.Study, trial: FrozenTrial, selected_as: str) -> dict[str, Any]:
    """A plain dict (YAML/JSON-safe): study, trial, its values and costs under which profile
    and counting convention, the data and evaluator that measured it, and the versions."""
    attrs, study_attrs = trial.user_attrs, study.user_attrs
    profile = study_attrs.get("profile", {})
    usable = select.is_usable(trial)
    return {
        "study": study.study_name,
        "trial": trial.number,
        "selected_as": selected_as,
        "status": select.status(trial),
        "baseline": select.baseline_name(trial),
        "objectives": select.objective_values(study, trial) if usable else None,
        "quality": select.quality(study).to_dict(),
        "costs": {key: attrs[key] for key in COST_ATTRS if key in attrs},
        "profile": {
            "name": profile.get("name"),
            "budgets": profile.get("budgets"),
            "convention": profile.get("convention"),
        },
        "data_fingerprint": attrs.get("data_fingerprint", study_attrs.get("data_fingerprint")),
        "evaluator": study_attrs.get("evaluator"),
        "space": study_attrs.get("space"),
        "training": {key: attrs[key] for key in TRAINING_ATTRS if key in attrs},
        "searched_with": study_attrs.get("archsearch_version"),
        "exported_with": __version__,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def headline(prov: dict[str, Any]) -> str:
    """One line: study, trial, quality and MACs under the profile."""
    values = prov.get("objectives") or {}
    name, quality = next(iter(values.items()), (None, None))  # the quality comes first
    quality_text = f"{name} {quality:.4f}" if quality is not None else prov["status"]
    macs = prov["costs"].get("macs")
    macs_text = f"{macs:,} MACs" if macs is not None else "MACs unknown"
    return (
        f"study '{prov['study']}', trial {prov['trial']}: {quality_text}, {macs_text} under "
        f"profile {prov['profile']['name']}"
    )
