"""``archsearch train CONFIG --tokens N``: train a found configuration for longer, resumably."""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", help="train one architecture for longer, with resumable checkpoints"
    )
    train.add_argument("config", help="architecture YAML (ArchConfig flat form or an export)")
    train.add_argument(
        "--tokens", type=int, required=True, help="training tokens (rounded down to whole steps)"
    )
    train.add_argument("--evaluator", default="lm_brief", help="recipe: data, optimizer, batch")
    train.add_argument("--out", default="archsearch-train", help="folder for checkpoints")
    train.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    train.add_argument(
        "--eval-points", type=int, default=10, help="validations (and checkpoints) over the run"
    )
    train.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop (with a checkpoint) after this many tokens in all; --resume continues",
    )
    train.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    train.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from archsearch import ArchConfig
    from archsearch.errors import InputError
    from archsearch.evaluate.checkpoint import train_resumable
    from archsearch.evaluate.recipe import load_recipe

    config = ArchConfig.from_yaml(args.config)
    base = load_recipe(args.evaluator)
    if base.scores_by_proxy:
        raise InputError(
            f"'{base.name}' scores untrained models with the zero-cost proxy {base.proxy} and "
            "trains nothing: give a training recipe (e.g. lm_brief)",
            key="--evaluator",
        )
    per_step = base.tokens_per_step
    for name, value in (("--tokens", args.tokens), ("--stop-after", args.stop_after)):
        if value is not None and value < per_step:
            raise InputError(
                f"must be at least one step of batch_size x seq_len = {per_step} tokens, "
                f"got {value}",
                key=name,
            )
    if args.eval_points < 1:
        raise InputError(f"must be >= 1, got {args.eval_points}", key="--eval-points")
    if args.threads < 1:
        raise InputError(f"must be >= 1, got {args.threads}", key="--threads")
    steps = args.tokens // per_step
    recipe = base.replace(token_budget=steps * per_step, eval_points=min(args.eval_points, steps))
    stop_at = None if args.stop_after is None else args.stop_after // per_step
    print(
        f"training {args.config} on {recipe.data} for {recipe.token_budget:,} tokens "
        f"({steps} steps of {per_step}) into {args.out}" + (" (resuming)" if args.resume else ""),
        flush=True,
    )
    start = time.perf_counter()

    def progress(point: dict) -> None:
        extra = f"  accuracy {point['val_accuracy']:.3f}" if "val_accuracy" in point else ""
        print(
            f"step {point['step']:>6}/{steps}  tokens {point['tokens']:>12,}  "
            f"train {point['train_bpb']:.4f}  val {point['val_bpb']:.4f} bpb{extra}  "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )

    outcome = train_resumable(
        config,
        recipe,
        Path(args.out),
        resume=args.resume,
        stop_at=stop_at,
        report=progress,
        threads=args.threads,
    )
    if outcome.finished:
        last = outcome.curve[-1] if outcome.curve else None
        final = f": validation {last['val_bpb']:.4f} bpb" if last else ""
        print(f"done after {outcome.step} steps{final}; checkpoint {outcome.checkpoint}")
    else:
        print(
            f"stopped after {outcome.step}/{outcome.steps} steps; continue with the same command "
            f"and --resume (checkpoint {outcome.checkpoint})",
            file=sys.stderr,
        )
    return 0
