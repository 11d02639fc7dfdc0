"""Can any cheap score tell the Lite Transformer's neighbours apart the way 8x training does?

Run: .venv/bin/python benchmarks/lite_neighbours.py [--sample N --seed K] [--train NAME ...
     --factor F --seeds S] [--workers 2]

The default run's brief stage has been won by the Lite Transformer baseline every time, so the
default run can only beat both baselines with a model near it. This benchmark keeps a journal
(`benchmarks/confirm/neighbours.jsonl`, one training run per line: name, architecture, budget
factor, seed, validation bpb) of mutations of the Lite Transformer of `oneshot_lm` at
`mobile_100M` (`archsearch/search/mutations.py`: one or two decisions redrawn), trained with
`lm_brief_synflow`'s training at 1x (brief), 2x and 8x its budget as
`benchmarks/confirm_candidate.py` trains (confirm's own `confirm_recipe` and `train_run`). It
prints, for every journalled model, each budget's bpb and its difference from the Lite
Transformer's (same seed), its supernet scores on the cached supernet of `supernet_brief` (raw,
less family offsets, fine-tuned 40 steps), and the Kendall
tau of each cheap score against 8x seed 0 over the models that have it.

`--sample N --seed K` adds N new mutations (named `mK-i`) and brief-trains them; `--train NAME
... --factor F --seeds S` trains the named models at F for seeds 0..S-1. Journalled runs are never
trained again. The first fifteen mutations (`m1-*`) came from an earlier form of the same
generator (the same rule), `local0` and `emb32` are the supernet's two best-scored of 80
mutations, and `ffn2` is the Lite Transformer with FFN ratio 2. `lite-8layers` and `lite-d320`
lie outside the space (the supernet cannot score them): do more layers or width pay at 8x?
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

JOURNAL = ROOT / "benchmarks" / "confirm" / "neighbours.jsonl"
EVALUATOR = "lm_brief_synflow"


def _read() -> list[dict[str, Any]]:
    if not JOURNAL.exists():
        return []
    return [json.loads(text) for text in JOURNAL.read_text().splitlines() if text.strip()]


def _lite() -> tuple[Any, Any, dict[str, Any]]:
    from archsearch.profiles import load_profile
    from archsearch.search.baselines import design_baselines
    from archsearch.space import load_space

    space, profile = load_space("oneshot_lm"), load_profile("mobile_100M")
    lite = {b.name: b for b in design_baselines(space, profile)}["lite_transformer"]
    return space, profile, lite.params


def _run(jobs: list[dict[str, Any]], workers: int) -> None:
    from confirm_candidate import train_into

    def out_of(job: dict[str, Any]) -> str:
        return f"runs/neighbours/{job['name']}-x{job['factor']:g}-s{job['seed']}"

    for line in train_into(JOURNAL, jobs, EVALUATOR, workers, out_of):
        print(f"{line['name']} x{line['factor']:g} seed {line['seed']}: {line['val_bpb']}")


def _supernet_scores(archs: dict[str, dict[str, Any]], workers: int) -> dict[str, dict]:
    """Raw, less-offsets and fine-tuned scores of each model on the cached supernet."""
    from archsearch.config import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.profiles import load_profile
    from archsearch.search.baselines import reference_design
    from archsearch.space import load_space
    from archsearch.supernet.offsets import _scored, measure_offsets
    from archsearch.supernet.store import ensure_supernet

    space, profile = load_space("oneshot_lm"), load_profile("mobile_100M")
    recipe = load_recipe("supernet_brief")
    path = ensure_supernet(space, recipe, threads=workers)
    reference = reference_design(space, profile)
    offsets = measure_offsets(space, path, recipe, reference, workers=workers)
    configs = {name: ArchConfig.from_dict(arch) for name, arch in archs.items()}
    out = {}
    for name, scores in _scored(path, configs, recipe, workers):
        raw = scores["raw"]
        out[name] = {
            "raw": raw,
            "adjusted": raw - offsets.of(configs[name]),
            "finetuned": scores["finetuned"],
        }
    return out


def report(workers: int) -> None:
    from archsearch.fidelity.ranks import kendall_tau

    lines = _read()
    archs = {line["name"]: line["arch"] for line in lines}
    runs: dict[tuple[str, float, int], float] = {}
    for line in lines:
        runs[(line["name"], line["factor"], line["seed"])] = line["val_bpb"]
    scores = _supernet_scores(archs, workers)
    columns = [(1.0, 0), (2.0, 0), (8.0, 0), (8.0, 1), (8.0, 2)]
    head = " ".join(f"{f'x{f:g} s{s}':>14}" for f, s in columns)
    print(f"{'model':10} {head} {'raw':>7} {'adj.':>7} {'tuned':>7}  redrawn")
    for name in archs:
        cells = []
        for factor, seed in columns:
            value, lite = runs.get((name, factor, seed)), runs.get(("lite", factor, seed))
            if value is None:
                cells.append(f"{'':>14}")
            elif name == "lite" or lite is None:
                cells.append(f"{value:>14.4f}")
            else:
                cells.append(f"{value:>7.4f} {value - lite:+.3f}")
        score = scores[name]
        changed = next(line.get("changed", "") for line in lines if line["name"] == name)
        print(
            f"{name:10} {' '.join(cells)} {score['raw']:>7.3f} {score['adjusted']:>7.3f} "
            f"{score['finetuned']:>7.3f}  {changed}"
        )
    truth = [n for n in archs if (n, 8.0, 0) in runs]
    print("Kendall tau against 8x seed 0:")
    for label, value in (
        ("supernet raw", lambda n: scores[n]["raw"]),
        ("supernet less offsets", lambda n: scores[n]["adjusted"]),
        ("supernet fine-tuned", lambda n: scores[n]["finetuned"]),
        ("brief training", lambda n: runs.get((n, 1.0, 0))),
        ("2x training", lambda n: runs.get((n, 2.0, 0))),
    ):
        names = [n for n in truth if value(n) is not None and math.isfinite(value(n))]
        if len(names) >= 3:
            tau = kendall_tau([value(n) for n in names], [runs[(n, 8.0, 0)] for n in names])
            print(f"  {label:24} {tau:+.3f} ({len(names)} models)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=0, help="new mutations to brief-train")
    parser.add_argument("--seed", type=int, default=2, help="their generator's seed")
    parser.add_argument("--train", nargs="*", default=[], help="journalled models to train")
    parser.add_argument("--factor", type=float, default=8.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    lines = _read()
    done = {(line["name"], line["factor"], line["seed"]) for line in lines}
    archs = {line["name"]: line for line in lines}
    jobs = []
    if args.sample:
        from archsearch.search.mutations import decisions, mutations, values_of

        space, profile, parent = _lite()
        rng = random.Random(args.seed)
        names = decisions(space, parent)
        for index, params in enumerate(mutations(space, profile, parent, args.sample, rng)):
            changed = [n for n in names if params.get(n) != parent.get(n)]
            arch = space.to_config(values_of(space, params)).to_dict()
            job = {"name": f"m{args.seed}-{index}", "arch": arch, "changed": changed}
            jobs.append({**job, "factor": 1.0, "seed": 0})
    for name in args.train:
        for seed in range(args.seeds):
            if (name, args.factor, seed) not in done:
                job = {k: archs[name][k] for k in ("name", "arch", "changed") if k in archs[name]}
                jobs.append({**job, "factor": args.factor, "seed": seed})
    jobs = [job for job in jobs if (job["name"], job["factor"], job["seed"]) not in done]
    if jobs:
        _run(jobs, args.workers)
    report(args.workers)


if __name__ == "__main__":
    main()
