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

# How allocators word an allocation failure: CPU (c10's DefaultCPUAllocator), CUDA, MPS.
_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def train_candidate(config: dict[str, Any], recipe: Recipe, threads: int = 1) -> None:
    """Ray Tune function trainable.

    Each eval point but the last is an intermediate report (``final: False``) carrying the
    recipe's quality metric, so a scheduler can stop weak trials; the last point arrives once,
    in the final report (``final: True``) with the cost objectives and the training figures.
    A candidate that fails reports ``failed: <reason>`` and ``failure: <kind>`` instead of
    raising, so the driver records why and the search goes on.
    """
    from archsearch.evaluate.train import evaluate

    costs = dict(config["objectives"])
    where = {"ray_node": _node_id()}
    wall_start, cpu_start = time.perf_counter(), time.process_time()

    def spent() -> dict[str, float]:
        return {
            "wall_s": time.perf_counter() - wall_start,
            "cpu_s": time.process_time() - cpu_start,
        }

    def report(point: dict[str, Any]) -> None:
        if point["step"] < recipe.steps:  # the end of training is the final report's job
            tune.report({**point, **costs, **spent(), **where, "final": False})

    def report_failure(kind: str, reason: str) -> None:
        # Tune insists every report carries the metrics; the searcher reads "failed" first.
        tune.report(
            {
                "failed": reason,
                "failure": kind,
                QUALITY: math.nan,
                **costs,
                **spent(),
                **where,
                "final": True,
            }
        )

    try:
        arch = ArchConfig.from_dict(config["arch"])
        result = evaluate(arch, recipe, report=report, threads=threads)
    except CandidateFailed as exc:
        report_failure("non_finite", exc.reason)
        return
    except Exception as exc:  # a broken candidate must not stop the search
        kind, reason = classify_failure(exc)
        report_failure(kind, reason)
        return
    if not math.isfinite(result.val_bpb):
        report_failure("non_finite", f"non-finite validation loss {result.val_bpb}")
        return
    tune.report(
        {
            QUALITY: result.val_bpb,
            "train_bpb": result.train_bpb,
            "tokens": result.tokens,
            "steps": result.steps,
            "diverged": result.diverged,
            "data_fingerprint": result.data_fingerprint,
            **_optional(val_accuracy=getattr(result, "val_accuracy", None)),
            **costs,
            **spent(),
            **where,
            "final": True,
        }
    )


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, reason) for an exception raised while building or training a candidate.

    ``kind`` is ``out_of_memory`` for allocation failures (torch raises them as RuntimeError
    with the allocator's message, or MemoryError / torch.OutOfMemoryError) and ``error``
    otherwise; the reason names the exception and where it was raised.
    """
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    frames = traceback.extract_tb(exc.__traceback__)
    origin = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = f"{type(exc).__name__}: {message}{origin}"
    out_of_memory = isinstance(exc, MemoryError) or any(
        marker in str(exc).lower() for marker in _OOM_TEXTS
    )
    if out_of_memory:
        return "out_of_memory", f"out of memory: {text}"
    return "error", text


def _optional(**values: Any) -> dict[str, Any]:
    """The values that are set (Tune keeps a metric once reported, so None is left out)."""
    return {key: value for key, value in values.items() if value is not None}


def _node_id() -> str | None:
    """The Ray node this worker runs on (which machine trained the candidate)."""
    import ray

    if not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()
