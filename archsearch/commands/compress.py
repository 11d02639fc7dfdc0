"""``archsearch compress CONFIG | --study S [--trial best|N] --int8 --prune METHOD``: int8
quantization and/or pruning of a found model, measured side by side with the float model and
saved in safetensors (see ``archsearch.compress``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from archsearch.search.defaults import DEFAULT_STORAGE

METHODS = ("magnitude", "structured")  # archsearch.compress.prune.METHODS, without imports


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    compress = subparsers.add_parser(
        "compress",
        help="int8 quantization and pruning of a found model, measured against the float one",
        description="Take a study trial or an architecture YAML, with the weights `train` saved "
        "(--weights) or trained here as the evaluator trains, and compress it: dynamic int8 "
        "quantization of its linear layers (--int8), pruning at --sparsity with a recovery "
        "fine-tune (--prune), or both. Prints file size, non-zero parameters, CPU latency on "
        "this machine and validation bpb for the float and the compressed model; writes both "
        "as safetensors (and ONNX with --onnx).",
    )
    compress.add_argument(
        "config", nargs="?", help="architecture YAML (ArchConfig flat form or an export)"
    )
    compress.add_argument("--study", help="take the architecture from this study instead")
    compress.add_argument("--storage", default=DEFAULT_STORAGE)
    compress.add_argument("--trial", default="best", help="'best' or a trial number (--study)")
    compress.add_argument(
        "--weights",
        help="train's checkpoint (checkpoint.pt or its folder), a float .safetensors compress "
        "wrote, or a safetensors state dict; default: train here with the evaluator's recipe",
    )
    compress.add_argument(
        "--evaluator",
        help="recipe for training, fine-tune and validation (default: the study's, else lm_brief)",
    )
    compress.add_argument("--int8", action="store_true", help="dynamic int8 linear layers")
    compress.add_argument("--prune", choices=METHODS, help="magnitude or structured (rows)")
    compress.add_argument(
        "--sparsity", type=float, default=0.5, help="fraction pruned per layer (default 0.5)"
    )
    compress.add_argument(
        "--finetune-tokens",
        type=int,
        default=None,
        help="recovery fine-tune after pruning (default: a quarter of the recipe's budget; 0: "
        "none)",
    )
    compress.add_argument(
        "--finetune-lr",
        type=float,
        default=None,
        help="peak learning rate of the fine-tune (default: the recipe's lr x final_lr_ratio, "
        "where its training ended)",
    )
    compress.add_argument(
        "--profile", default="mobile_100M", help="workload the latency is timed on"
    )
    compress.add_argument("--out", default="compressed", help="folder to write into")
    compress.add_argument("--onnx", action="store_true", help="also write float and int8 ONNX")
    compress.add_argument("--json", action="store_true", help="print the figures as JSON")
    compress.set_defaults(handler=handle)


def _source(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(config, recipe, file stem) from the study trial or the YAML."""
    from pathlib import Path

    from archsearch import ArchConfig
    from archsearch.errors import InputError
    from archsearch.evaluate.recipe import Recipe, load_recipe

    if (args.config is None) == (args.study is None):
        raise InputError("give an architecture YAML or --study, not both", key="config")
    if args.study is None:
        config = ArchConfig.from_yaml(args.config)
        recipe = load_recipe(args.evaluator or "lm_brief")
        return config, recipe, Path(args.config).stem
    from archsearch.export.naming import export_stem
    from archsearch.export.select import select_trial
    from archsearch.report.reading import load_existing_study
    from archsearch.search import trial_attrs as attrs

    study = load_existing_study(args.storage, args.study)
    trial = select_trial(study, args.trial)
    try:
        config = ArchConfig.from_dict(trial.user_attrs[attrs.ARCH])
    except InputError as exc:
        raise exc.under(f"trial {trial.number} arch") from None
    if args.evaluator is not None:
        recipe = load_recipe(args.evaluator)
    else:
        record = study.user_attrs.get("evaluator")
        recipe = Recipe.from_dict(record) if isinstance(record, dict) else load_recipe("lm_brief")
    return config, recipe, export_stem(study, trial)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archsearch import load_profile
    from archsearch.compress.flow import Plan, compress
    from archsearch.compress.prune import Pruning
    from archsearch.errors import InputError

    try:
        import safetensors  # noqa: F401  (the saved format)
    except ImportError:
        raise InputError("safetensors is needed: pip install 'archsearch[export]'") from None
    if not args.int8 and args.prune is None:
        raise InputError("nothing to do: give --int8, --prune METHOD, or both", key="--int8")
    pruning = None if args.prune is None else Pruning(args.prune, args.sparsity)
    if args.finetune_tokens is not None and args.finetune_tokens < 0:
        raise InputError(f"must be >= 0, got {args.finetune_tokens}", key="--finetune-tokens")
    if args.finetune_lr is not None and not args.finetune_lr > 0:
        raise InputError(f"must be > 0, got {args.finetune_lr}", key="--finetune-lr")
    profile = load_profile(args.profile)
    config, recipe, stem = _source(args)
    if recipe.scores_by_proxy:
        raise InputError(
            f"'{recipe.name}' trains nothing (zero-cost proxy): give a training recipe",
            key="--evaluator",
        )
    tokens = args.finetune_tokens
    if tokens is None:
        tokens = recipe.token_budget // 4
    plan = Plan(
        int8=args.int8, pruning=pruning, finetune_tokens=tokens, finetune_lr=args.finetune_lr
    )
    weights = None if args.weights is None else Path(args.weights)
    say = (lambda _: None) if args.json else (lambda line: print(line, flush=True))
    result = compress(
        config,
        recipe,
        profile,
        plan,
        Path(args.out),
        stem,
        weights=weights,
        onnx=args.onnx,
        say=say,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


def print_table(result: dict[str, Any]) -> None:
    base, other = result["models"]
    work = result["workload"]
    clock = base["latency_clock"]

    def change(a: float, b: float) -> str:
        return f"{b / a:.3g}x" if a else "-"

    rows = [
        ("file bytes", f"{base['file_bytes']:,}", f"{other['file_bytes']:,}",
         f"{base['file_bytes'] / other['file_bytes']:.2f}x smaller"),
        ("non-zero parameters", f"{base['nonzero_params']:,}", f"{other['nonzero_params']:,}",
         change(base["nonzero_params"], other["nonzero_params"])),
        (f"latency ms ({clock})", f"{base['latency_ms']:.3g}", f"{other['latency_ms']:.3g}",
         change(base["latency_ms"], other["latency_ms"])),
        ("validation bpb", f"{base['val_bpb']:.4f}", f"{other['val_bpb']:.4f}",
         f"{other['val_bpb'] - base['val_bpb']:+.4f}"),
    ]  # fmt: skip
    print(
        f"{result['origin']}; latency: {work['batch_size']} x {work['tokens']} tokens, "
        f"{work['threads']} thread(s) ({result['profile']}), on this machine under its load"
    )
    print(f"  {'':<22} {'float':>14} {other['name']:>20} {'change':>16}")
    for name, a, b, c in rows:
        print(f"  {name:<22} {a:>14} {b:>20} {c:>16}")
    if other.get("finetuned_tokens"):
        print(f"  (recovery fine-tune: {other['finetuned_tokens']:,} tokens)")
    for path in result["files"]:
        print(f"wrote {path}")
