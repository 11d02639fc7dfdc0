"""Self-describing file names for exports and plots: study, trial and size in the name."""

from __future__ import annotations

import re

import optuna

from archsearch.search import trial_attrs as attrs


def safe_name(text: str) -> str:
    """``text`` with anything but letters, digits, dots, dashes and underscores made ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "study"


def export_stem(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    """``<study>-trial<N>-<MACs>M-macs``, e.g. ``tiny_lm.mobile_100M.lm_brief-trial7-41.3M-macs``
    (MACs under the study profile's counting convention)."""
    stem = f"{safe_name(study.study_name)}-trial{trial.number}"
    macs = trial.user_attrs.get(attrs.MACS)
    if isinstance(macs, (int, float)):
        stem += f"-{macs / 1e6:.3g}M-macs"
    return stem
