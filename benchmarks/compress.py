"""Float vs int8 vs int8 + 50% pruning on the default run's best model and an efficient_lm mix.

Run: .venv/bin/python benchmarks/compress.py [--db benchmarks/confirm/default_run.db]
     [--finetune-tokens 45056] [--json out.json]

Models:

- ``default-best``: ``--trial best`` of the default run's trained study
  (``oneshot_lm.mobile_100M.supernet_brief.trained`` in the kept ``default_run.db``), which is
  its Lite Transformer baseline (d256, 6 x LSRA + dense FFN): the search's own finalist lost
  to it when confirmed;
- ``default-searched``: that study's searched finalist (trial 2: local + sparse-4 FFN, full +
  sparse-8 FFN), whose sparse FFNs read their weights by picked rows and so stay float;
- ``efficient-mix``: an efficient_lm-style configuration using several families (``MIX``).

Each is trained once with the study's recipe (lm_brief's 180,224 bytes), as the search's
evaluator trained it; then compressed with ``archsearch.compress`` exactly as ``archsearch
compress`` does. Pruned models get a recovery fine-tune of ``--finetune-tokens`` with the same
recipe, peaking at the learning rate training ended at (the default of ``compress``); a float
control gets the same fine-tune, so the bpb change of pruning is read against it. Latency:
``archsearch measure``'s forward timing of mobile_100M's workload (1 x 30 tokens, 1 thread, CPU
clock) on this 2-core machine, which other jobs were loading: read latency ratios loosely.
Sizes and parameter counts are exact; bpb is one seed.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import optuna
import torch

from archsearch import ArchConfig, load_profile
from archsearch.compress.flow import float_model, measure
from archsearch.compress.prune import Pruning, finetune, prune
from archsearch.compress.quantize import quantize_int8
from archsearch.compress.store import data_bytes, save_compressed
from archsearch.costs.int8 import int8_weight_bytes
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import validate
from archsearch.export.select import select_trial

STUDY = "oneshot_lm.mobile_100M.supernet_brief.trained"
MIX = {  # one layer each of Performer + switch MoE, local + dense, LSH + sparse, Linformer + dense
    "vocab_size": 256,
    "max_seq_len": 256,
    "d_model": 256,
    "embed_dim": 64,
    "n_layers": 4,
    "attention": ["performer", "local", "lsh", "linformer"],
    "ffn": ["switch_moe", "dense", "sparse", "dense"],
    "ffn_ratio": [4, 4, 4, 2],
    "performer_features": 64,
    "window": 32,
    "lsh_bucket_size": 32,
    "linformer_k": 64,
    "experts": [4, 1, 1, 1],
    "sparsity": [1, 1, 4, 1],
}
LITE_TRANSFORMER = 18.2  # Lite Transformer's size reduction from pruning plus 8-bit quantization


def models(db: Path) -> tuple[list[tuple[str, ArchConfig]], Recipe]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}")
    recipe = Recipe.from_dict(study.user_attrs["evaluator"])
    chosen = [
        ("default-best", select_trial(study, "best")),
        ("default-searched", select_trial(study, 2)),
    ]
    out = [(name, ArchConfig.from_dict(trial.user_attrs["arch"])) for name, trial in chosen]
    out.append(("efficient-mix", ArchConfig.from_dict(MIX)))
    return out, recipe


def run_model(
    name: str, config: ArchConfig, recipe: Recipe, tokens: int, folder: Path
) -> dict[str, Any]:
    profile = load_profile("mobile_100M")
    started = time.perf_counter()
    model, _ = float_model(config, recipe, None, lambda line: None)
    trained_s = time.perf_counter() - started

    def measured(label: str, module: torch.nn.Module, pruned: list[str]) -> dict[str, Any]:
        path = save_compressed(
            module, config, folder / f"{name}.{label}.safetensors", pruned=pruned
        )
        row = measure(label, module, config, path, recipe, profile).to_dict()
        row["data_bytes"] = data_bytes(path)
        return row

    def bpb(module: torch.nn.Module) -> float:
        return validate(module, make_batches(recipe), recipe)["val_bpb"]

    rows = [measured("float", model, [])]
    control = copy.deepcopy(model)
    finetune(control, {}, recipe, tokens)
    rows[0]["bpb_after_same_finetune"] = bpb(control)
    rows.append(measured("int8", quantize_int8(model), []))
    for method in ("magnitude", "structured"):
        pruned = copy.deepcopy(model)
        masks = prune(pruned, Pruning(method, 0.5))
        before = bpb(pruned)
        finetune(pruned, masks, recipe, tokens)
        row = measured(f"int8+{method}50", quantize_int8(pruned), list(masks))
        row["bpb_pruned_before_finetune"] = before
        row["bpb_pruned_float_after_finetune"] = bpb(pruned)
        rows.append(row)
    return {
        "name": name,
        "config": config.to_dict(),
        "params": sum(p.numel() for p in model.parameters()),
        "weight_bytes_int8": int8_weight_bytes(config),
        "train_s": trained_s,
        "rows": rows,
    }


def print_model(result: dict[str, Any]) -> None:
    base = result["rows"][0]
    control = base["bpb_after_same_finetune"]
    print(
        f"\n{result['name']}: {result['params']:,} parameters; float trained in "
        f"{result['train_s']:.0f} s (loaded machine); weight_bytes_int8 "
        f"{result['weight_bytes_int8']:,} (int8 file data: {result['rows'][1]['data_bytes']:,})"
    )
    print(
        "| model | file bytes | smaller | non-zero params | latency ms (cpu) | change | val bpb "
        "| vs float + same fine-tune |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        against = control if "bpb_pruned_before_finetune" in row else base["val_bpb"]
        note = ""
        if "bpb_pruned_before_finetune" in row:
            note = f" (pruned, before fine-tune: {row['bpb_pruned_before_finetune']:.3f})"
        print(
            f"| {row['name']} | {row['file_bytes']:,} | "
            f"{base['file_bytes'] / row['file_bytes']:.2f}x | {row['nonzero_params']:,} | "
            f"{row['latency_ms']:.3g} | {row['latency_ms'] / base['latency_ms']:.2f}x | "
            f"{row['val_bpb']:.4f}{note} | {row['val_bpb'] - against:+.4f} |"
        )
    print(f"(float after the same fine-tune: {control:.4f} bpb)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="benchmarks/confirm/default_run.db")
    parser.add_argument("--finetune-tokens", type=int, default=45056, help="a quarter of 180,224")
    parser.add_argument("--only", default=None, help="one model name")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    chosen, recipe = models(Path(args.db))
    print(
        f"recipe {recipe.name}: {recipe.token_budget:,} training bytes, fine-tune "
        f"{args.finetune_tokens:,}; latency 1 x 30 tokens, 1 thread, CPU clock, on a loaded "
        "2-core machine"
    )
    results = []
    with TemporaryDirectory() as folder:
        for name, config in chosen:
            if args.only and name != args.only:
                continue
            results.append(run_model(name, config, recipe, args.finetune_tokens, Path(folder)))
            print_model(results[-1])
    best = max(r["rows"][0]["file_bytes"] / row["file_bytes"] for r in results for row in r["rows"])
    print(
        f"\nlargest size reduction here {best:.1f}x, against Lite Transformer's "
        f"{LITE_TRANSFORMER}x (pruning plus 8-bit quantization)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
