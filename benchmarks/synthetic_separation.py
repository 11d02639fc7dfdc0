"""Do the synthetic evaluator recipes separate attention families? Train each family on each task.

Run: .venv/bin/python benchmarks/synthetic_separation.py [--tasks mqar,listops] [--seeds 0,1]
     [--families full,local] [--workers 2]

One fixed small model (2 layers, d_model 64, 4 heads) per row; only the attention family changes.
Each row is trained at the built-in recipe's budget (``--token-budget`` / ``--lr`` / ``--seq-len``
/ ``--batch-size`` override it, to calibrate) on one thread, and the table prints validation
answer accuracy and bits per answer, the majority-answer chance level of the task's validation
set, and accuracy relative to full attention of the same task and seed in this run. reverse
(seq2seq) compares full with local self-attention in encoder and decoder (cross-attention is
always full). ``--workers 2`` runs two spawned processes of one thread each.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from archsearch import ArchConfig
from archsearch.evaluate.data import IGNORE, make_batches
from archsearch.evaluate.recipe import Recipe, load_recipe
from archsearch.evaluate.train import evaluate
from archsearch.families import specs

BASE = {"n_layers": 2, "d_model": 64, "heads": 4}
# Sizes well below the tasks' sequence lengths, so no family reduces to exact full attention:
# Linformer with seq_len <= k, LSH with a bucket >= seq_len and a local window covering the
# sequence all would. local's window (8 back, 16 over two layers) is below most key-to-query
# distances of mqar and selective_copy; lsra keeps full attention on half its channels.
FAMILIES = {
    name: {"attention": name, **example}
    for name, spec in specs("attention").items()
    if (example := spec.example("separation")) is not None
}
CAUSAL_TASKS = ("mqar", "selective_copy", "listops")
SEQ2SEQ_TASKS = ("reverse",)
SEQ2SEQ_FAMILIES = ("full", "local")  # what an encoder-decoder pair is compared on


def arch(task: str, family: str, seq_len: int) -> dict[str, Any]:
    """The flat ArchConfig of one row."""
    out = {**BASE, **FAMILIES[family], "max_seq_len": seq_len}
    if task in SEQ2SEQ_TASKS:
        out.update(task="seq2seq", n_encoder_layers=2)
    return out


def recipe_for(task: str, args: argparse.Namespace, seed: int) -> Recipe:
    """The built-in recipe, with the command line's overrides and ``seed``."""
    data = load_recipe(task).to_dict()
    for key in ("seq_len", "batch_size", "token_budget"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.lr is not None:
        data["optimizer"]["lr"] = args.lr
    step = data["batch_size"] * data["seq_len"]
    data["eval_tokens"] = max(step, data["eval_tokens"] // step * step)  # keep it valid
    if args.eval_tokens is not None:
        data["eval_tokens"] = args.eval_tokens // step * step
    data["token_budget"] = max(step, data["token_budget"] // step * step)
    data["seed"] = seed
    return Recipe.from_dict(data, name=task)


def chance(recipe: Recipe) -> float:
    """Accuracy of always answering the most common validation answer."""
    batches = make_batches(recipe)
    counts: Counter[int] = Counter()
    for index in range(recipe.eval_batches):
        targets = batches.valid(index).targets
        counts.update(targets[targets != IGNORE].tolist())
    return counts.most_common(1)[0][1] / sum(counts.values())


def run_row(task: str, family: str, recipe: Recipe) -> dict[str, Any]:
    """One training run (top level, so a spawned worker can run it)."""
    config = ArchConfig.from_dict(arch(task, family, recipe.seq_len))
    result = evaluate(config, recipe, threads=1)
    return {
        "acc": result.val_accuracy,
        "bpb": result.val_bpb,
        "wall_s": result.wall_s,
        "curve": [round(point["val_accuracy"], 3) for point in result.curve],
    }


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _names(text: str, known: tuple[str, ...], option: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"{option}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(CAUSAL_TASKS + SEQ2SEQ_TASKS))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--seeds", default="0", help="recipe seeds, comma-separated")
    parser.add_argument("--workers", type=int, default=1, choices=(1, 2))
    parser.add_argument("--token-budget", type=int)
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--eval-tokens", type=int)
    parser.add_argument("--curves", action="store_true", help="print accuracy at each eval point")
    args = parser.parse_args()
    tasks = _names(args.tasks, CAUSAL_TASKS + SEQ2SEQ_TASKS, "--tasks")
    families = _names(args.families, tuple(FAMILIES), "--families")
    seeds = [int(seed) for seed in args.seeds.split(",")]

    jobs = []
    for task in tasks:
        rows = [f for f in families if task not in SEQ2SEQ_TASKS or f in SEQ2SEQ_FAMILIES]
        jobs += [(task, family, recipe_for(task, args, seed)) for family in rows for seed in seeds]
    start = time.perf_counter()
    if args.workers == 1:
        results = [run_row(*job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")  # fork after torch threads is unsafe
        with ProcessPoolExecutor(2, mp_context=context, initializer=_one_thread) as pool:
            results = list(pool.map(run_row, *zip(*jobs, strict=True)))
    wall = time.perf_counter() - start

    by_key = {(t, f, r.seed): out for (t, f, r), out in zip(jobs, results, strict=True)}
    print(f"{BASE}, one thread per run; acc = answer accuracy, bpb = bits per answer")
    header = f"{'task':<15} {'family':<10} {'seed':>4} {'acc':>6} {'bpb':>6} {'x full':>6} {'s':>5}"
    print(header + ("  curve" if args.curves else ""))
    for task in tasks:
        recipe = next(r for t, _, r in jobs if t == task)
        print(
            f"{task}: seq_len {recipe.seq_len}, batch {recipe.batch_size}, {recipe.steps} steps, "
            f"lr {recipe.optimizer.lr:g}; chance (majority answer) {chance(recipe):.3f}"
        )
        for (t, family, recipe), out in zip(jobs, results, strict=True):
            if t != task:
                continue
            full = by_key.get((task, "full", recipe.seed))
            ratio = f"{out['acc'] / full['acc']:>6.2f}" if full and full["acc"] else f"{'-':>6}"
            line = (
                f"{'':<15} {family:<10} {recipe.seed:>4} {out['acc']:>6.3f} {out['bpb']:>6.2f} "
                f"{ratio} {out['wall_s']:>5.0f}"
            )
            print(line + (f"  {out['curve']}" if args.curves else ""))
    print(f"wall time {wall:.0f} s for {len(jobs)} runs, {args.workers} worker(s)")


if __name__ == "__main__":
    main()
