"""The confirm's result as one plain mapping, stored on the original study (user attribute
``confirmed``) so ``show``, the comparison table and optuna-dashboard read it without the
companion study or any statistics code."""

from __future__ import annotations

import math
from typing import Any

from archsearch.confirm import verdict
from archsearch.confirm.selection import Model

STUDY_ATTR = "confirmed"
MIN_RANKED = 3  # models with both scores before a rank correlation says anything


def build_summary(
    models: list[Model],
    runs: dict[int, dict[int, float]],
    *,
    factor: float,
    seeds: int,
    token_budget: int,
    recipe: str,
    companion: str,
    failed: dict[tuple[int, int, float], str] | None = None,
) -> dict[str, Any]:
    """Means and intervals per model, paired verdicts of each candidate against each baseline,
    the confirmed best candidate, those that lost, and the cheap score's rank agreement."""
    rows = []
    for model in models:
        values = runs.get(model.trial, {})
        estimate = verdict.mean_interval(list(values.values())) if values else None
        rows.append(
            {
                **model.to_dict(),
                "runs": {str(seed): values[seed] for seed in sorted(values)},
                "estimate": estimate.to_dict() if estimate else None,
            }
        )
    candidates = [m for m in models if m.baseline is None]
    baselines = [m for m in models if m.baseline is not None]
    comparisons = []
    for candidate in candidates:
        for baseline in baselines:
            ratio = candidate.macs / baseline.macs if baseline.macs > 0 else None
            found = verdict.judge(
                candidate.name,
                baseline.name,
                runs.get(candidate.trial, {}),
                runs.get(baseline.trial, {}),
                macs_ratio=ratio if ratio is not None and math.isfinite(ratio) else None,
            )
            if found is not None:
                comparisons.append(
                    {
                        **found.to_dict(),
                        "candidate_trial": candidate.trial,
                        "baseline_trial": baseline.trial,
                        "detectable_sentence": verdict.detectable_sentence(found),
                    }
                )
    means = {row["trial"]: row["estimate"]["mean"] for row in rows if row["estimate"]}
    confirmed = [m.trial for m in candidates if m.trial in means]
    best = min(confirmed, key=lambda t: (means[t], t)) if confirmed else None
    lost = sorted({c["candidate_trial"] for c in comparisons if c["outcome"] == verdict.WORSE})
    return {
        "companion_study": companion,
        "recipe": recipe,
        "factor": factor,
        "seeds": seeds,
        "token_budget": token_budget,
        "level": verdict.LEVEL,
        "models": rows,
        "comparisons": comparisons,
        "best": best,
        "lost": lost,
        "failed": [
            {"trial": key[0], "seed": key[1], "reason": reason}
            for key, reason in sorted((failed or {}).items())
        ],
        "fidelity": rank_agreement(models, means),
    }


def rank_agreement(models: list[Model], means: dict[int, float]) -> dict[str, Any] | None:
    """How the study's cheap score ranked the confirmed models: Kendall tau-b (bootstrap
    interval) between the cheap score and the confirmed mean; None under ``MIN_RANKED``."""
    pairs = [(m.score, means[m.trial]) for m in models if m.score is not None and m.trial in means]
    if len(pairs) < MIN_RANKED:
        return None
    from archsearch.fidelity import correlation

    found = correlation([p[0] for p in pairs], [p[1] for p in pairs])
    return {
        "kendall_tau": found["kendall_tau"],
        "interval": found["kendall_tau_interval"],
        "n": found["n"],
    }
