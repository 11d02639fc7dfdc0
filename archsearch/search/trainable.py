"""What runs on a Ray worker: train one candidate and report to Tune. Never opens the study."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

from ray import tune

from archsearch.config import ArchConfig
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.recipe import Recipe

QUALITY = "val_bpb"  # the recipe's quality metric, minimised


def train_candidate(config: dict[str, Any], recipe: Recipe, threads: int = 1) -> None:
    """Ray Tune function trainable.

    Intermediate reports carry the recipe's quality metric so a scheduler can stop weak trials;
    the last report also carries the cost objectives. A candidate that fails reports
    ``failed: <reason>`` instead of raising, so the driver can record why.
    """
    from archsearch.evaluate.train import evaluate

    costs = dict(config["objectives"])
    wall_start, cpu_start = time.perf_counter(), time.process_time()

    def spent() -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - wall_start,
            "cpu_s": time.process_time() - cpu_start,
        }

    def report(point: dict[str, Any]) -> None:
        tune.report({**point, **costs, **spent(), "final": False})

    def report_failure(reason: str) -> None:
        # Tune insists every report carries the metrics; the searcher reads "failed" first.
        tune.report({"failed": reason, QUALITY: math.nan, **costs, **spent(), "final": True})

    try:
        arch = ArchConfig.from_dict(config["arch"])
        result = evaluate(arch, recipe, report=report, threads=threads)
    except CandidateFailed as exc:
        report_failure(exc.reason)
        return
    except MemoryError:
        report_failure("out of memory")
        return
    except Exception as exc:  # a broken candidate must not stop the search
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({where.filename}:{where.lineno})"
        if "out of memory" in str(exc).lower():
            reason = f"out of memory: {exc}"
        report_failure(reason)
        return
    if not math.isfinite(result.val_bpb):
        report_failure(f"non-finite validation loss {result.val_bpb}")
        return
    tune.report(
        {
            QUALITY: result.val_bpb,
            "train_bpb": result.train_bpb,
            "tokens": result.tokens,
            "steps": result.steps,
            "diverged": result.diverged,
            "data_fingerprint": result.data_fingerprint,
            **costs,
            **spent(),
            "final": True,
        }
    )
