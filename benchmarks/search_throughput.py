"""Search throughput with 1 and 2 Ray workers, and what rejecting a candidate costs.

Run: .venv/bin/python benchmarks/search_throughput.py [--tokens 65536]

1. Trials per hour: the same grid of 8 small candidates (all within budget) searched twice in
   one process, on one local Ray instance, with 1 and then 2 parallel workers. Printed end to end
   (the run's wall time, worker start-up included) and steady (first to last finished trial),
   with the ratio 2 workers / 1 worker; "in flight" is how many trials ran at once on average
   and "train CPU s" the workers' CPU time, so a machine too busy to give the second worker a
   core shows as overlap without speed-up; the speed-up two plain CPU-bound processes get on
   the machine at that moment is printed beside the ratio as the reference. "overhead s" is the
   time per trial spent outside training (ask, scheduling, reports, bookkeeping, tell).
2. Rejecting vs training: the driver's verdict on an over-budget candidate (space constraints,
   analytic costs, budgets: what happens before any worker is asked), the whole rejection as the
   searcher records it (ask, verdict, attributes, tell, in SQLite), and the brief training of the
   smallest feasible candidate, with ratios.

Timings depend on the machine's load: compare the ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

SPACE = {
    "name": "bench",
    "task": "causal_lm",
    "fixed": {
        "vocab_size": 256,
        "max_seq_len": 64,
        "heads": 2,
        "attention": "full",
        "ffn": "dense",
    },
    "params": {
        "n_layers": {"int": [1, 2]},
        "d_model": {"choice": [32, 64]},
        "ffn_ratio": {"choice": [1, 2]},
    },
}
PROFILE = {
    "name": "bench",
    "convention": {"tokens": 30, "exclude": ["embedding", "output"]},
    "budgets": {"macs": 1.0e9},
    "objectives": ["macs"],
}
TIGHT = {**PROFILE, "name": "tight", "budgets": {"macs": 1.0e5}}  # rejects every candidate
RECIPE = {
    "name": "bench",
    "task": "causal_lm",
    "data": "python_stdlib",
    "tokenizer": "bytes",
    "seq_len": 64,
    "batch_size": 8,
    "token_budget": 65536,  # 128 steps: a few seconds per candidate, so training dominates
    "optimizer": {"name": "adamw", "lr": 3.0e-3, "betas": [0.9, 0.95], "weight_decay": 0.1},
    "schedule": {"warmup_fraction": 0.1, "final_lr_ratio": 0.1},
    "grad_clip": 1.0,
    "eval_tokens": 1024,
    "eval_points": 2,
    "seed": 0,
}


def write(folder: Path, name: str, data: dict) -> str:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _spin(seconds: float) -> float:
    """Busy work for about ``seconds`` on an idle core; returns the wall time it took."""
    started = time.perf_counter()
    total = 0
    for i in range(int(seconds * 2e7)):
        total += i
    return time.perf_counter() - started


def parallel_headroom(seconds: float = 1.0) -> float:
    """Speed-up two processes get over one on this machine right now (2.0 on 2 idle cores)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_spin, [0.05, 0.05])  # start-up out of the way
        alone = pool.apply(_spin, (seconds,))
        started = time.perf_counter()
        pool.map(_spin, [seconds, seconds])
        together = time.perf_counter() - started
    return 2 * alone / together


def throughput(folder: Path, workers: int) -> dict[str, float]:
    from archsearch.search import SearchOptions, run_search
    from archsearch.search.study import load_study

    storage = f"sqlite:///{folder / f'w{workers}.db'}"
    summary = run_search(
        SearchOptions(
            space=write(folder, "space", SPACE),
            profile=write(folder, "profile", PROFILE),
            evaluator=str(folder / "recipe.yaml"),
            storage=storage,
            study=f"w{workers}",
            trials=8,
            workers=workers,
            sampler="grid",
        )
    )
    study = load_study(storage, f"w{workers}")
    trained = [t for t in study.trials if t.user_attrs.get("status") == "complete"]
    done = sorted(t.datetime_complete for t in trained)
    steady = (done[-1] - done[0]).total_seconds()
    busy = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trained)
    span = (done[-1] - min(t.datetime_start for t in trained)).total_seconds()
    return {
        "trained": summary.trained,
        "wall_s": summary.wall_s,
        "per_hour": summary.trained / summary.wall_s * 3600,
        "steady_per_hour": (len(done) - 1) / steady * 3600 if steady > 0 else float("nan"),
        "concurrency": busy / span,  # trials in flight on average: ~workers if they overlap
        # Driver and Tune time around each training: ask, schedule, report, record, tell.
        "overhead_s": (busy - sum(t.user_attrs["wall_s"] for t in trained)) / len(trained),
        "train_cpu_s": sum(t.user_attrs["cpu_s"] for t in trained),
    }


def rejection_costs(folder: Path, repeats: int = 2000) -> dict[str, float]:
    import optuna

    from archsearch.profiles import load_profile
    from archsearch.search.samplers import make_sampler
    from archsearch.search.searcher import ArchSearcher
    from archsearch.search.verdict import judge
    from archsearch.space import load_space

    space = load_space(write(folder, "space", SPACE))
    tight = load_profile(write(folder, "tight", TIGHT))
    values = {**space.fixed, "n_layers": 1, "d_model": 32, "ffn_ratio": 1}
    assert judge(space, tight, values).over_budget, "the benchmark candidate must be over budget"
    judge(space, tight, values)  # warm caches and imports
    started = time.perf_counter()
    for _ in range(repeats):
        judge(space, tight, values)
    verdict_s = (time.perf_counter() - started) / repeats

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rejections = 20
    searcher = ArchSearcher(
        space,
        tight,
        sampler=make_sampler("random", 0),
        storage=optuna.storages.RDBStorage(f"sqlite:///{folder / 'reject.db'}"),
        study_name="reject",
        max_rejections=rejections,
    )
    started = time.perf_counter()
    searcher.suggest("t0")  # every proposal is over budget: 20 recorded rejections
    recorded_s = (time.perf_counter() - started) / rejections
    return {"verdict_s": verdict_s, "recorded_s": recorded_s}


def smallest_training(folder: Path) -> float:
    from archsearch import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.evaluate.train import evaluate

    smallest = {**SPACE["fixed"], "n_layers": 1, "d_model": 32, "ffn_ratio": 1}
    config = ArchConfig.from_dict({**smallest, "task": "causal_lm"})
    recipe = load_recipe(str(folder / "recipe.yaml"))
    evaluate(config, recipe, threads=1)  # the first run pays one-time imports
    runs = [evaluate(config, recipe, threads=1).wall_s for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=RECIPE["token_budget"])
    args = parser.parse_args()
    from archsearch.search.ray_session import ensure_ray

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write(folder, "recipe", {**RECIPE, "token_budget": args.tokens})
        print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        headroom = parallel_headroom()
        ensure_ray(None, num_cpus=2)
        one = throughput(folder, workers=1)
        two = throughput(folder, workers=2)
        costs = rejection_costs(folder)
        train_s = smallest_training(folder)
        print(f"load average at end:   {os.getloadavg()[0]:.2f}")

    print("\nthroughput (8 candidates, grid, same candidates in both runs)")
    header = (
        "workers",
        "trained",
        "wall s",
        "trials/h",
        "steady/h",
        "in flight",
        "train CPU s",
        "overhead s",
    )
    print(" ".join(f"{column:>11}" for column in header))
    for workers, row in ((1, one), (2, two)):
        cells = (
            f"{workers}",
            f"{row['trained']}",
            f"{row['wall_s']:.1f}",
            f"{row['per_hour']:.0f}",
            f"{row['steady_per_hour']:.0f}",
            f"{row['concurrency']:.2f}",
            f"{row['train_cpu_s']:.1f}",
            f"{row['overhead_s']:.2f}",
        )
        print(" ".join(f"{cell:>11}" for cell in cells))
    print(
        f"ratio 2 workers / 1 worker: {two['per_hour'] / one['per_hour']:.2f} end to end, "
        f"{two['steady_per_hour'] / one['steady_per_hour']:.2f} steady "
        f"(two plain CPU-bound processes got {headroom:.2f}x over one, just before)"
    )
    verdict_us, recorded_ms = costs["verdict_s"] * 1e6, costs["recorded_s"] * 1e3
    print("\nrejecting an over-budget candidate vs training the smallest feasible one")
    print(f"  driver verdict (constraints, analytic costs, budget): {verdict_us:9.1f} µs")
    print(f"  recorded rejection (ask, verdict, attrs, tell; SQLite): {recorded_ms:7.1f} ms")
    print(f"  brief training of the smallest feasible candidate: {train_s:10.2f} s")
    print(f"  training / verdict: {train_s / costs['verdict_s']:,.0f}x")
    print(f"  training / recorded rejection: {train_s / costs['recorded_s']:,.1f}x")


if __name__ == "__main__":
    main()
