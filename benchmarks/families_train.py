"""Train every family of the design space for a few hundred steps in the evaluator.

Run: .venv/bin/python benchmarks/families_train.py [--steps 300] [--only full,sparsefinder]

Small models (2 layers, d_model 64) on the default corpus, one thread; prints validation
bits per byte at the first of three evaluation points and at the end, and wall time relative to
the full-attention baseline of the same run.
"""

from __future__ import annotations

import argparse

from archsearch import ArchConfig
from archsearch.evaluate.recipe import load_recipe
from archsearch.evaluate.train import evaluate
from archsearch.families import all_specs, memory_specs

BASE = {"n_layers": 2, "d_model": 64, "heads": 4, "max_seq_len": 64}
# Every family's "benchmark" example (full attention first: the baseline), then a few variants.
FAMILIES = {
    spec.name: {spec.kind: spec.name, **example}
    for spec in all_specs()
    if (example := spec.example("benchmark")) is not None
}
FAMILIES.update(
    {
        spec.name: example
        for spec in memory_specs().values()
        if (example := spec.example("benchmark")) is not None
    }
)
FAMILIES["lsra dynamic"] = {"attention": "lsra", "lsra_split": 0.5, "conv_type": "dynamic"}
FAMILIES["albert"] = {"embed_dim": 32, "share_layers": True}
FAMILIES["inf+linformer"] = {
    "memory": "infinity",
    "ltm_basis": 16,
    "ltm_samples": 16,
    "attention": "linformer",
    "linformer_k": 32,
}
# RETRO: the second layer reads 2 neighbours per 16-token chunk from the training split's store
FAMILIES["retrieval"] = {"retrieval_chunk": 16, "retrieval_k": 2, "retrieve": [False, True]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--only", default="", help="comma-separated rows to run (full, the baseline, always runs)"
    )
    args = parser.parse_args()
    wanted = {"full", *filter(None, args.only.split(","))} if args.only else set(FAMILIES)
    unknown = wanted - set(FAMILIES)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    base = load_recipe("lm_brief")
    step_tokens = 8 * 64
    recipe = base.replace(
        seq_len=64,
        batch_size=8,
        token_budget=args.steps * step_tokens,
        eval_tokens=16 * step_tokens,
        eval_points=3,
    )
    print(f"{args.steps} steps of {step_tokens} tokens, lr {recipe.optimizer.lr}, one thread")
    print("(wall times depend on what else the machine runs: compare rows of one run)")
    print(f"{'family':<14} {'early bpb':>9} {'end bpb':>8} {'wall s':>7} {'x full':>7}")
    baseline = None
    for name, extra in FAMILIES.items():
        if name not in wanted:
            continue
        result = evaluate(ArchConfig.from_dict({**BASE, **extra}), recipe)
        baseline = baseline or result.wall_s
        start = result.curve[0]["val_bpb"]
        print(
            f"{name:<14} {start:>9.3f} {result.val_bpb:>8.3f} {result.wall_s:>7.1f} "
            f"{result.wall_s / baseline:>7.2f}"
        )


if __name__ == "__main__":
    main()
