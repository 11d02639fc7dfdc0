"""``archsearch fidelity``: does the evaluator rank candidates near the budget like longer
training does? Trains K configurations at the recipe's budget and at ``--factor`` times it."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from archsearch.search.defaults import DEFAULT_EVALUATOR


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    fidelity = subparsers.add_parser(
        "fidelity", help="rank correlation of brief training (and proxies) vs longer training"
    )
    fidelity.add_argument(
        "--space",
        default="efficient_lm",
        help="built-in name or YAML path (default efficient_lm: every family of the design space)",
    )
    fidelity.add_argument("--profile", default="mobile_100M", help="built-in name or YAML path")
    fidelity.add_argument(
        "--evaluator",
        default=DEFAULT_EVALUATOR,
        help=f"built-in name or YAML path (default {DEFAULT_EVALUATOR}, which trains `run`'s "
        "finalists; a supernet recipe such as supernet_brief is ranked beside its training)",
    )
    fidelity.add_argument(
        "--configs", type=int, default=12, help="configurations sampled near the budget (>= 4)"
    )
    fidelity.add_argument(
        "--factor", type=int, default=8, help="the reference trains this many times longer"
    )
    fidelity.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="parallel processes, one torch thread each",
    )
    fidelity.add_argument("--seed", type=int, default=0, help="seed of the configuration sample")
    fidelity.add_argument(
        "--reference-seeds",
        type=int,
        default=1,
        metavar="N",
        help="train each reference N times (recipe seeds counting up) and rank by the mean; "
        "N >= 2 also reports how well two reference seeds agree (default 1)",
    )
    fidelity.add_argument(
        "--proxies",
        default=None,
        help="comma-separated zero-cost proxies (default: all; 'none' for none)",
    )
    fidelity.add_argument(
        "--save",
        default=None,
        metavar="JOURNAL",
        help="JSON-lines journal of finished jobs: run again with it to resume or re-print",
    )
    fidelity.add_argument(
        "--sample-space",
        default=None,
        metavar="SPACE",
        help="draw the configurations from this space instead of --space (built-in name or "
        "YAML path; each must be one of --space's): a journal's references, drawn before "
        "--space grew, measure an evaluator over the grown space without retraining",
    )
    fidelity.add_argument(
        "--brief-seeds",
        type=int,
        default=1,
        metavar="N",
        help="train each configuration briefly N times (recipe seeds counting up) and report "
        "each seed's tau and their mean score's (default 1)",
    )
    fidelity.add_argument(
        "--supernet-seeds",
        type=int,
        default=1,
        metavar="N",
        help="with a supernet evaluator: train its supernet N times (recipe seeds counting up), "
        "each scoring every configuration, and report each training's tau and their mean "
        "score's (default 1)",
    )
    fidelity.add_argument("--json", action="store_true", help="print the report as JSON")
    fidelity.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import run_fidelity
    from archsearch.profiles import load_profile
    from archsearch.space import load_space

    space, profile = load_space(args.space), load_profile(args.profile)
    recipe = load_recipe(args.evaluator)
    proxies = None
    if args.proxies is not None:
        proxies = [] if args.proxies == "none" else [p for p in args.proxies.split(",") if p]

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    report = run_fidelity(
        space,
        profile,
        recipe,
        configs=args.configs,
        factor=args.factor,
        workers=args.workers,
        seed=args.seed,
        proxies=proxies,
        progress=progress,
        journal=Path(args.save) if args.save else None,
        reference_seeds=args.reference_seeds,
        sample_space=load_space(args.sample_space) if args.sample_space else None,
        supernet_seeds=args.supernet_seeds,
        brief_seeds=args.brief_seeds,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    print_report(report)
    return 0


def print_report(report) -> None:
    """Plain-text report: what was compared, each configuration, then the correlations."""
    from archsearch.fidelity import BOOTSTRAP_LEVEL

    k = len(report.results)
    print(
        f"fidelity of '{report.evaluator}' on space '{report.space}' under '{report.profile}': "
        f"{k} configurations with MACs in [{report.macs_low:,.0f}, {report.macs_budget:,.0f}]"
        + (f", drawn from space '{report.sample_space}'" if report.sample_space else "")
    )
    seeds = report.reference_seeds
    print(
        f"brief: {report.short_tokens:,} tokens; reference: {report.long_tokens:,} tokens "
        f"({report.factor}x"
        + (f", mean of {seeds} seeds" if seeds > 1 else "")
        + f"); {report.wall_s:.0f} s wall, {report.cpu_s:.0f} s CPU, "
        f"{report.workers} workers"
        + (f"; {report.reused_jobs} jobs read back from the journal" if report.reused_jobs else "")
    )
    blend = report.recipe.get("blend")
    if blend:
        print(
            f"brief score: brief bpb - {blend['weight']:g} x {blend['proxy']} "
            "(the recipe's blend), ranked against the reference's bpb"
        )
    if k < 12:
        print(f"note: only {k} configurations; rank correlations over so few are noisy")
    proxies = list(report.results[0].proxies) if report.results else []
    runs = [f"ref s{seed}" for seed in range(seeds)] if seeds > 1 else []
    supernet = "supernet" in report.correlations
    tuned = "supernet_finetuned" in report.correlations
    adjusted = "supernet_offsets" in report.correlations
    scores = (["brief score"] if blend else []) + (["supernet"] if supernet else [])
    scores += ["fine-tuned"] if tuned else []
    scores += ["less offs."] if adjusted else []
    trainings = report.supernet_seeds if report.supernet_seeds > 1 else 0
    briefs = report.brief_seeds if report.brief_seeds > 1 else 0
    scores += ["brief mean"] if briefs else []
    scores += (["sn mean"] + (["offs. mean"] if adjusted else [])) if trainings else []
    header = f"{'#':>3} {'MACs':>12} {'brief bpb':>10} {'ref bpb':>9}  " + "".join(
        f"{name:>11}" for name in [*scores, *runs, *proxies]
    )
    print(header + "  family")
    for index, result in enumerate(report.results, 1):
        cells = f"{result.short_score:>11.4f}" if blend else ""
        cells += f"{result.supernet_bpb:>11.4f}" if supernet else ""
        cells += f"{result.finetuned_bpb:>11.4f}" if tuned else ""
        cells += f"{result.offset_bpb:>11.4f}" if adjusted else ""
        cells += f"{_mean(result.short_scores):>11.4f}" if briefs else ""
        if trainings:
            cells += f"{_mean(result.supernet_runs):>11.4f}"
            cells += f"{_mean(result.offset_runs):>11.4f}" if adjusted else ""
        cells += "".join(f"{bpb:>11.4f}" for bpb in result.long_runs) if seeds > 1 else ""
        cells += "".join(f"{result.proxies.get(name, math.nan):>11.4g}" for name in proxies)
        print(
            f"{index:>3} {result.macs:>12,} {result.short_bpb:>10.4f} {result.long_bpb:>9.4f}  "
            f"{cells}  {result.family}"
        )
        for reason in result.failed:
            print(f"      failed: {reason}")
    print(
        "rank correlation with the reference ranking (+1: identical order; "
        f"[low, high]: {BOOTSTRAP_LEVEL:.0%} bootstrap interval over the configurations)"
    )
    for name, values in report.correlations.items():
        low, high = values["kendall_tau_interval"]
        print(
            f"  {name:<18} Kendall tau {values['kendall_tau']:>6.3f} [{low:>6.3f}, {high:>6.3f}]   "
            f"Spearman {values['spearman']:>6.3f}   over {values['n']}"
        )
    for count, name, what in (
        (briefs, "brief_training", "each configuration trained briefly again"),
        (trainings, "supernet", "the supernet trained again"),
    ):
        if count:
            names = [name, *(f"{name}_s{seed}" for seed in range(1, count))]
            held = report.correlations
            taus = [held[n]["kendall_tau"] for n in names if n in held]
            print(
                f"  ({name}_s1 ...: {what} from recipe seeds 1 ...; over the {count} seeds its "
                f"tau averages {_mean(taus):.3f}; {name}_mean ranks by their mean score)"
            )
    if "reference_repeat" in report.correlations:
        print(
            "  (reference_repeat: the first two reference seeds' runs against each other; "
            "a brief recipe cannot be expected to agree with the reference better than that)"
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
