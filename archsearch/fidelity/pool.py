"""Running jobs: in this process, or in spawned worker processes that end with their parent."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from archsearch.config import ArchConfig
from archsearch.errors import RunAborted
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.workers import torch_pool
from archsearch.fidelity.jobs import FidelityResult, Job


def execute(
    jobs: list[Job], results: list[FidelityResult], proxies: list[str], workers: int
) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Yield (job, outcome) as jobs finish: in this process, or in ``workers`` spawned
    processes of one torch thread each."""
    calls = [(job.kind, results[job.index].arch, job.recipe, proxies) for job in jobs]
    if workers == 1:
        for job, call in zip(jobs, calls, strict=True):
            yield job, run_job(*call)
        return
    with torch_pool(workers) as pool:
        futures: dict[Future, Job] = {
            pool.submit(run_job, *call): job for job, call in zip(jobs, calls, strict=True)
        }
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:  # the pool ends the other workers and fails every job left
                raise RunAborted(
                    "a fidelity worker process died (killed, perhaps for memory) while jobs "
                    "were running"
                ) from None
            yield futures[future], outcome


def run_job(
    kind: str, arch: dict[str, Any], recipe: Recipe, proxies: Sequence[str]
) -> dict[str, Any]:
    """One unit of work (top level, so a spawned worker can run it): train or score proxies.

    A candidate that fails is a result (``failed``), not a crash of the whole report.
    """
    import torch

    from archsearch.evaluate import CandidateFailed

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    config = ArchConfig.from_dict(arch)
    try:
        if kind == "proxies":
            from archsearch.evaluate.proxies import PROXIES

            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                scores = {name: PROXIES[name](config, recipe) for name in proxies}
            finally:
                torch.set_num_threads(previous)
            outcome: dict[str, Any] = {"proxies": scores}
        else:
            from archsearch.evaluate.train import evaluate

            result = evaluate(config, recipe, threads=1)
            curve = [{"tokens": p["tokens"], "val_bpb": p["val_bpb"]} for p in result.curve]
            outcome = {"val_bpb": result.val_bpb, "wall_s": result.wall_s, "curve": curve}
    except CandidateFailed as exc:
        outcome = {"failed": exc.reason}
    except (RuntimeError, MemoryError, ValueError) as exc:
        outcome = {"failed": f"{type(exc).__name__}: {exc}"}
    if "failed" in outcome:  # a trained result carries its own wall time, imports excluded
        outcome["wall_s"] = time.perf_counter() - wall_start
    outcome["cpu_s"] = time.process_time() - cpu_start
    return outcome
