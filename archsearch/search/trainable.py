"""What runs on a Ray worker: score one candidate (train it, or take a zero-cost proxy) and
report to Tune. Never opens the study."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

from ray import tune

from archsearch.config import ArchConfig
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.recipe import Recipe
from archsearch.search import trial_attrs as attrs
from archsearch.search.quality import BLEND_ATTR, DEFAULT_QUALITY, Quality, quality_of

QUALITY = DEFAULT_QUALITY.name  # the training recipes' quality metric, minimised

# How allocators word an allocation failure: CPU (c10's DefaultCPUAllocator), CUDA, MPS.
_OOM_TEXTS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def train_candidate(
    config: dict[str, Any],
    recipe: Recipe,
    threads: int = 1,
    supernet: str | None = None,
    offsets: dict[str, Any] | None = None,
) -> None:
    """Ray Tune function trainable: score one candidate as the recipe says.

    A training recipe trains it: each eval point but the last is an intermediate report
    (``final: False``) carrying the quality metric, so a scheduler can stop weak trials; the
    last point arrives once, in the final report (``final: True``) with the cost objectives and
    the training figures. A proxy recipe scores the untrained model once, in a final report; a
    supernet recipe scores the inherited weights of the supernet saved at ``supernet`` likewise,
    less the candidate's family ``offsets`` when the run measured them.
    A candidate that fails (an exception, a NaN or infinite quality) reports ``failed: <reason>``
    and ``failure: <kind>`` instead of raising, so the driver records why and the search goes on.
    """
    quality = quality_of(recipe)
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
                quality.name: math.nan,
                **costs,
                **spent(),
                **where,
                "final": True,
            }
        )

    try:
        arch = ArchConfig.from_dict(config["arch"])
        if quality.supernet:
            figures = _supernet_figures(arch, recipe, quality, supernet, offsets, threads)
        elif quality.proxy is not None:
            figures = _proxy_figures(arch, recipe, quality, threads)
        elif quality.blend is not None:
            figures = _blended_figures(arch, recipe, quality, report, threads)
        else:
            figures = _training_figures(arch, recipe, report, threads)
    except CandidateFailed as exc:
        report_failure("non_finite", exc.reason)
        return
    except Exception as exc:  # a broken candidate must not stop the search
        kind, reason = classify_failure(exc)
        report_failure(kind, reason)
        return
    value = figures[quality.name]
    if not math.isfinite(value):
        what = (
            "validation loss"
            if quality.trains or quality.supernet
            else f"zero-cost proxy {quality.proxy} score"
        )
        report_failure("non_finite", f"non-finite {what} {value}")
        return
    tune.report({**figures, **costs, **spent(), **where, "final": True})


def _training_figures(
    arch: ArchConfig, recipe: Recipe, report: Any, threads: int
) -> dict[str, Any]:
    """Train briefly (``evaluate``) and return what the final report carries."""
    from archsearch.evaluate.train import evaluate

    result = evaluate(arch, recipe, report=report, threads=threads)
    return {
        QUALITY: result.val_bpb,
        "train_bpb": result.train_bpb,
        "tokens": result.tokens,
        "steps": result.steps,
        "diverged": result.diverged,
        "data_fingerprint": result.data_fingerprint,
        **_optional(val_accuracy=getattr(result, "val_accuracy", None)),
        **(_selection_figures(result) if recipe.selection is not None else {}),
    }


def _selection_figures(result: Any) -> dict[str, Any]:
    """What a recipe's active selection cost beyond training (scoring forward passes)."""
    return {
        "selection_tokens": result.selection_tokens,
        "selection_macs": result.selection_macs,
        "selection_s": result.selection_s,
    }


def _blended_figures(
    arch: ArchConfig, recipe: Recipe, quality: Quality, report: Any, threads: int
) -> dict[str, Any]:
    """Score the untrained model with the blend's proxy first, so every report (the
    scheduler's included) carries the blended score; then train as usual."""
    from archsearch.evaluate.proxies import score_with

    blend = quality.blend
    assert blend is not None
    proxy = blend.proxy
    value = score_with(proxy, arch, recipe, threads=threads)
    if not math.isfinite(value):
        raise CandidateFailed(f"non-finite {proxy} score {value} (blended into the quality)")

    def blended_report(point: dict[str, Any]) -> None:
        report({**point, quality.name: blend.score(point[QUALITY], value)})

    figures = _training_figures(arch, recipe, blended_report, threads)
    return {**figures, quality.name: blend.score(figures[QUALITY], value), BLEND_ATTR: value}


def _proxy_figures(
    arch: ArchConfig, recipe: Recipe, quality: Quality, threads: int
) -> dict[str, Any]:
    """Score the untrained model with the recipe's zero-cost proxy; no training."""
    from archsearch.evaluate.data import data_fingerprint
    from archsearch.evaluate.proxies import score

    value = score(arch, recipe, threads=threads)
    return {quality.name: value, "data_fingerprint": data_fingerprint(recipe)}


def _supernet_figures(
    arch: ArchConfig,
    recipe: Recipe,
    quality: Quality,
    path: str | None,
    offsets: dict[str, Any] | None,
    threads: int,
) -> dict[str, Any]:
    """Score the sub-network by its weights inherited from the trained supernet at ``path``,
    less its layers' family offsets (``archsearch/supernet/offsets.py``) when given."""
    from pathlib import Path

    from archsearch.evaluate.data import data_fingerprint
    from archsearch.supernet.offsets import Offsets
    from archsearch.supernet.scoring import score_from_file

    if path is None:
        raise ValueError("a supernet recipe needs the trained supernet's path")
    raw = score_from_file(Path(path), arch, recipe, threads=threads)
    if offsets is None:
        return {quality.name: raw, "data_fingerprint": data_fingerprint(recipe)}
    offset = Offsets.from_dict(offsets).of(arch)
    return {
        quality.name: raw - offset,
        attrs.INHERITED_BPB: raw,
        attrs.FAMILY_OFFSET: offset,
        "data_fingerprint": data_fingerprint(recipe),
    }


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
