"""Proxy fidelity: how well a cheap score ranks candidates against long training.

``run.py`` holds the measurement and its report (read its docstring first); ``region.py``
samples what is compared, ``ranks.py`` correlates, ``jobs.py``, ``journal.py`` and ``pool.py``
plan, remember and run the training jobs.
"""

from __future__ import annotations

from archsearch.fidelity.jobs import FidelityResult, Job
from archsearch.fidelity.journal import NOT_IN_JOBS, Journal, job_key, legacy_job_key
from archsearch.fidelity.pool import run_job
from archsearch.fidelity.ranks import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_RESAMPLES,
    correlation,
    kendall_tau,
    kendall_tau_interval,
    rankdata,
    spearman,
)
from archsearch.fidelity.region import (
    LOW_FRACTION,
    MAX_DRAWS,
    MAX_STALE_DRAWS,
    MIN_CONFIGS,
    Candidate,
    family,
    macs_budget,
    sample_region,
)
from archsearch.fidelity.run import (
    FidelityReport,
    Progress,
    brief_score,
    correlations,
    run_fidelity,
)

__all__ = [
    "BOOTSTRAP_LEVEL",
    "BOOTSTRAP_RESAMPLES",
    "LOW_FRACTION",
    "MAX_DRAWS",
    "MAX_STALE_DRAWS",
    "MIN_CONFIGS",
    "NOT_IN_JOBS",
    "Candidate",
    "FidelityReport",
    "FidelityResult",
    "Job",
    "Journal",
    "Progress",
    "brief_score",
    "correlation",
    "correlations",
    "family",
    "job_key",
    "kendall_tau",
    "kendall_tau_interval",
    "legacy_job_key",
    "macs_budget",
    "rankdata",
    "run_fidelity",
    "run_job",
    "sample_region",
    "spearman",
]
