"""Active data selection against the same recipe without it, at equal training tokens.

Run: .venv/bin/python benchmarks/active_selection.py [--steps 300] [--seeds 2] [--pool 4]

Three architectures (2 layers, d_model 64, 64-token sequences, one thread): the Transformer
(full attention, dense FFN), a Lite-Transformer-like model (LSRA, split 0.5, dense FFN) and a
sparse one (SparseFinder attention, sparse FFN with sparsity 4). Each is trained from the same
initial weights three ways: on the data order (``none``), on the ``pool`` x batch_size
candidates' highest-loss sequences (``loss``), and on uniformly drawn ones (``random``: as much
text read, no loss). Reported per architecture and variant: validation bpb (mean over seeds;
seed s changes the initial weights), its change against ``none``, wall seconds per run, the
seconds choosing took, and the forward MACs scoring the pools cost as a share of training's own
MACs (forward and backward, taken as 3 x the forward's). Wall times come from a loaded 2-core
machine: read them as ratios.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from archsearch import ArchConfig, estimate_costs
from archsearch.costs.convention import CountingConvention
from archsearch.evaluate.recipe import Selection, load_recipe
from archsearch.evaluate.train import evaluate

BASE = {"n_layers": 2, "d_model": 64, "heads": 4, "max_seq_len": 64}
ARCHITECTURES = {
    "transformer": {},
    "lite (lsra)": {"attention": "lsra", "lsra_split": 0.5},
    "sparse": {"attention": "sparsefinder", "finder_dim": 8, "finder_k": 16, "ffn": "sparse",
               "sparsity": 4},
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    step_tokens = 8 * 64
    base = load_recipe("lm_brief").replace(
        seq_len=64,
        batch_size=8,
        token_budget=args.steps * step_tokens,
        eval_tokens=16 * step_tokens,
        eval_points=1,
    )
    variants = {
        "none": None,
        "loss": Selection(pool=args.pool, by="loss"),
        "random": Selection(pool=args.pool, by="random"),
    }
    print(
        f"{args.steps} steps of {step_tokens} tokens, pool {args.pool} x 8 sequences, "
        f"{args.seeds} seeds, one thread, loaded machine"
    )
    print(
        f"{'architecture':<13} {'selection':<9} {'val bpb':>8} {'vs none':>8} "
        f"{'per seed':<17} {'wall s':>7} {'choose s':>8} {'extra MACs':>10}"
    )
    for name, extra in ARCHITECTURES.items():
        config = ArchConfig.from_dict({**BASE, **extra})
        per_sequence = estimate_costs(config, CountingConvention(tokens=64, exclude=())).macs
        training_macs = 3 * per_sequence * 8 * args.steps
        reference = None
        for label, selection in variants.items():
            results = [
                evaluate(config, base.replace(seed=seed, selection=selection))
                for seed in range(args.seeds)
            ]
            bpbs = [r.val_bpb for r in results]
            mean = statistics.fmean(bpbs)
            reference = mean if reference is None else reference
            seeds = " ".join(f"{b:.3f}" for b in bpbs)
            wall = statistics.fmean(r.wall_s for r in results)
            choose = statistics.fmean(r.selection_s for r in results)
            share = results[0].selection_macs / training_macs
            print(
                f"{name:<13} {label:<9} {mean:>8.3f} {mean - reference:>+8.3f} {seeds:<17} "
                f"{wall:>7.1f} {choose:>8.1f} {share:>9.0%}"
            )


if __name__ == "__main__":
    main()
