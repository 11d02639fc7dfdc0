"""SparseFinder's measured sparsity and recall, after brief training in the evaluator.

Run: .venv/bin/python benchmarks/sparsefinder_recall.py [--steps 300]

For each (finder_dim, finder_k), a 2-layer d_model 64 model whose layers are both SparseFinder
attention is trained like ``families_train.py``'s rows (one thread), then each layer's finder is
measured on validation batches against its own dense attention: the share of allowed
(query, key) pairs it skips (sparsity), the share of each query's k largest dense attention
weights it picks (recall), and the dense attention weight on the picked keys (mass). The same
figures for the untrained model, and for an untrained finder on the trained model (its
projections re-drawn), show what the finder's loss taught.
"""

from __future__ import annotations

import argparse
import time

import torch

from archsearch import ArchConfig, build_model
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.recipe import load_recipe
from archsearch.evaluate.train import fit
from archsearch.models.attention.sparsefinder import SparseFinderAttention, recall_and_sparsity

BASE = {"n_layers": 2, "d_model": 64, "heads": 4, "max_seq_len": 64, "attention": "sparsefinder"}
SETTINGS = ((4, 8), (8, 16), (16, 16), (8, 32))
VALID_BATCHES = 4


def finder_figures(model: torch.nn.Module, batches, count: int) -> dict[str, float]:
    """Mean sparsity, recall and mass over every SparseFinder layer and ``count`` batches."""
    inputs: list[tuple[SparseFinderAttention, torch.Tensor]] = []
    hooks = [
        module.register_forward_hook(lambda m, args, out: inputs.append((m, args[0])))
        for module in model.modules()
        if isinstance(module, SparseFinderAttention)
    ]
    totals = {"sparsity": 0.0, "recall": 0.0, "mass": 0.0}
    model.eval()
    try:
        with torch.no_grad():
            for index in range(count):
                inputs.clear()
                model(batches.valid(index).inputs)
                for module, x in inputs:
                    for key, value in recall_and_sparsity(module, x).items():
                        totals[key] += value / (count * len(inputs))
    finally:
        for hook in hooks:
            hook.remove()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    step_tokens = 8 * 64
    recipe = load_recipe("lm_brief").replace(
        seq_len=64,
        batch_size=8,
        token_budget=args.steps * step_tokens,
        eval_tokens=16 * step_tokens,
        eval_points=1,
    )
    batches = make_batches(recipe)
    print(f"{args.steps} steps of {step_tokens} tokens, one thread (loaded machine: wall times")
    print("are indicative); figures averaged over both layers and 4 validation batches of 8 x 64")
    header = f"{'r':>3} {'k':>3} {'val bpb':>8} {'sparsity':>9} {'recall':>7} {'mass':>6}"
    print(f"{header} {'untrained recall':>17} {'re-drawn recall':>16} {'wall s':>7}")
    for r, k in SETTINGS:
        config = ArchConfig.from_dict({**BASE, "finder_dim": r, "finder_k": k})
        torch.manual_seed(recipe.seed)
        model = build_model(config)
        untrained = finder_figures(model, batches, VALID_BATCHES)
        start = time.perf_counter()
        curve = fit(model, recipe, batches=batches)
        wall = time.perf_counter() - start
        trained = finder_figures(model, batches, VALID_BATCHES)
        torch.manual_seed(1)
        for module in model.modules():
            if isinstance(module, SparseFinderAttention):
                with torch.no_grad():
                    module.finder_q.normal_(0, module.finder_q.shape[0] ** -0.5)
                    module.finder_k.normal_(0, module.finder_k.shape[0] ** -0.5)
        redrawn = finder_figures(model, batches, VALID_BATCHES)
        print(
            f"{r:>3} {k:>3} {curve[-1]['val_bpb']:>8.3f} {trained['sparsity']:>9.3f} "
            f"{trained['recall']:>7.3f} {trained['mass']:>6.3f} {untrained['recall']:>17.3f} "
            f"{redrawn['recall']:>16.3f} {wall:>7.1f}"
        )


if __name__ == "__main__":
    main()
