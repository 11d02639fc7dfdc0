"""Retrain trials of a searched study at `--factor` times its recipe's budget over seeds, as
`archsearch confirm` trains its runs (its `confirm_recipe` and `train_run`), without retraining
the baselines: their confirm runs are kept in `benchmarks/confirm/*.db` and repeat from one
session to the next to the last digit printed, so a candidate of another run is compared with
them seed by seed.

Run: .venv/bin/python benchmarks/confirm_candidate.py --storage sqlite:///runs/archsearch.db \
    --trial 5 --trial 2 [--seeds 3] [--factor 8] [--workers 2]

Each finished run is appended to `benchmarks/confirm/candidates.jsonl` (one line: study, trial,
architecture, seed, factor, val_bpb, wall seconds); runs already there are not trained again.
The comparison printed uses the baselines' runs of `benchmarks/confirm/default_run.db`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOURNAL = ROOT / "benchmarks" / "confirm" / "candidates.jsonl"
BASELINES = ROOT / "benchmarks" / "confirm" / "default_run.db"
BASELINE_STUDY = "oneshot_lm.mobile_100M.supernet_brief.trained.confirm"


def _train(arch: dict[str, Any], evaluator: str, factor: float, seed: int, out: str) -> dict:
    from archsearch.confirm.runs import confirm_recipe, train_run
    from archsearch.evaluate.recipe import load_recipe

    recipe = confirm_recipe(load_recipe(evaluator), factor, seed)
    return train_run(arch, recipe, out, threads=1)


def train_into(
    journal: Path,
    jobs: list[dict[str, Any]],
    evaluator: str,
    workers: int,
    out_of: Callable[[dict[str, Any]], str],
) -> Iterator[dict[str, Any]]:
    """Train each job (``arch``, ``factor``, ``seed`` and what else its journal line keeps) as
    confirm does, on ``workers`` one-thread processes, into checkpoint folder ``out_of(job)``;
    append each finished run to ``journal`` as the job plus ``val_bpb`` and ``wall_s`` (and
    ``failed``), and yield that line."""
    from archsearch.evaluate.workers import torch_pool

    with torch_pool(max(1, min(workers, len(jobs) or 1))) as pool:
        futures = {
            pool.submit(
                _train, job["arch"], evaluator, job["factor"], job["seed"], out_of(job)
            ): job
            for job in jobs
        }
        for future in as_completed(futures):
            job, outcome = futures[future], future.result()
            line = {**job, "val_bpb": outcome.get("val_bpb"), "wall_s": outcome.get("wall_s")}
            if "failed" in outcome:
                line["failed"] = outcome["failed"]
            with journal.open("a") as handle:
                handle.write(json.dumps(line) + "\n")
            yield line


def _key(line: dict[str, Any]) -> str:
    return json.dumps([line["arch"], line["seed"], line["factor"]], sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", default="oneshot_lm.mobile_100M.supernet_brief.trained")
    parser.add_argument("--trial", type=int, action="append", required=True)
    parser.add_argument("--evaluator", default="lm_brief_synflow", help="the study's recipe")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--factor", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--folder", default="runs/confirm_candidate", help="checkpoints")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    done = {}
    if JOURNAL.exists():
        for text in JOURNAL.read_text().splitlines():
            line = json.loads(text)
            done[_key(line)] = line
    jobs = []
    for number in args.trial:
        arch = study.trials[number].user_attrs["arch"]
        for seed in range(args.seeds):
            line = {"study": args.study, "trial": number, "arch": arch, "seed": seed}
            line["factor"] = args.factor
            if _key(line) not in done:
                jobs.append(line)

    def out_of(job: dict[str, Any]) -> str:
        return f"{args.folder}/trial{job['trial']}-seed{job['seed']}-x{args.factor:g}"

    for line in train_into(JOURNAL, jobs, args.evaluator, args.workers, out_of):
        done[_key(line)] = line
        print(f"trial {line['trial']} seed {line['seed']}: {line['val_bpb']}", flush=True)

    stored = optuna.load_study(study_name=BASELINE_STUDY, storage=f"sqlite:///{BASELINES}")
    baselines: dict[str, dict[int, float]] = {}
    for trial in stored.trials:
        name = trial.user_attrs.get("baseline")
        if name and trial.values and trial.user_attrs.get("factor") == args.factor:
            baselines.setdefault(name, {})[trial.user_attrs["seed"]] = trial.values[0]
    for number in args.trial:
        arch = study.trials[number].user_attrs["arch"]
        runs = {}
        for seed in range(args.seeds):
            line = done.get(_key({"arch": arch, "seed": seed, "factor": args.factor}))
            if line and line.get("val_bpb") is not None:
                runs[seed] = line["val_bpb"]
        mean = sum(runs.values()) / len(runs) if runs else float("nan")
        print(f"trial {number}: {mean:.4f} over seeds {sorted(runs)}")
        for name, seeds in sorted(baselines.items()):
            paired = [runs[s] - seeds[s] for s in runs if s in seeds]
            if paired:
                print(
                    f"  against {name}: {sum(paired) / len(paired):+.4f} bpb paired by seed "
                    f"({', '.join(f'{d:+.4f}' for d in paired)})"
                )


if __name__ == "__main__":
    main()
