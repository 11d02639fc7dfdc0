"""``archsearch measure CONFIG --profile P``: costs, memory and latency of one architecture."""

from __future__ import annotations

import argparse
import json
from typing import Any


def seq_lens_arg(text: str) -> list[int]:
    """``128,512,2048`` -> [128, 512, 2048]; argparse reports anything else as a usage error."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sequence lengths must be positive integers: {text!r}")
    return values


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    measure = subparsers.add_parser(
        "measure", help="MACs, parameters, memory and latency of one architecture"
    )
    measure.add_argument("config", help="architecture YAML (ArchConfig flat form or an export)")
    measure.add_argument("--profile", default="mobile_100M", help="built-in name or YAML path")
    measure.add_argument("--json", action="store_true", help="print JSON")
    measure.add_argument(
        "--seq-lens",
        type=seq_lens_arg,
        default=None,
        metavar="T1,T2,...",
        help="also tabulate the figures at these sequence lengths (e.g. 128,512,2048,8192)",
    )
    measure.add_argument(
        "--batch", type=positive_int, help="sequences per forward (default: profile)"
    )
    measure.add_argument("--threads", type=positive_int, help="CPU threads (default: profile)")
    measure.add_argument(
        "--no-latency", action="store_true", help="skip timing (analytic and predicted only)"
    )
    measure.add_argument(
        "--generate", type=positive_int, default=16, help="new tokens per timed generation round"
    )
    measure.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from archsearch import ArchConfig, load_profile
    from archsearch.measure import MeasureOptions, measure_arch

    profile = load_profile(args.profile)
    config = ArchConfig.from_yaml(args.config)
    options = MeasureOptions(latency=not args.no_latency, generate=args.generate)
    report = measure_arch(
        config,
        profile,
        seq_lens=args.seq_lens or (),
        options=options,
        batch=args.batch,
        threads=args.threads,
    )
    if args.json:
        print(json.dumps({"config": args.config, **report}, indent=2))
        return 0
    print_report(args.config, report)
    return 0


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.1f} MB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms"


def _stats(stats: dict[str, Any]) -> str:
    return (
        f"{stats['median_ms']:.3g} ms median (IQR {stats['q1_ms']:.3g}-{stats['q3_ms']:.3g}, "
        f"p10-p90 {stats['p10_ms']:.3g}-{stats['p90_ms']:.3g}, {stats['repeats']} repeats)"
    )


def print_report(path: str, report: dict[str, Any]) -> None:
    from archsearch.profiles import format_value

    work = report["workload"]
    convention = report["convention"]
    print(f"{path} under {report['profile']}: {convention['description']}")
    print(f"  MACs          {report['macs']:>14,}")
    print(f"  parameters    {report['counted_params']:>14,} counted, {report['params']:,} in all")
    print(
        f"  workload      {work['batch_size']} x {work['tokens']} tokens, "
        f"{work['threads']} thread(s)"
    )
    memory = report["memory"]
    inference, generation, training = memory["inference"], memory["generation"], memory["training"]
    print(
        f"  memory        inference {_mb(inference['peak'])} (weights {_mb(inference['weights'])},"
        f" peak at {inference['phase']})"
    )
    print(
        f"                generation {_mb(generation['peak'])} (cache "
        f"{_mb(generation['parts']['cache'])} at {work['tokens']} tokens of context)"
    )
    print(
        f"                training {_mb(training['peak'])} (activations "
        f"{_mb(training['activations'])}, peak at {training['phase']}; AdamW, float32)"
    )
    latency = report["latency"]
    for clock, stats in latency.get("forward", {}).items():
        label = "latency" if clock == "wall" else ""
        print(f"  {label:<13} forward, {clock} clock: {_stats(stats)}")
    if "generation" in latency:
        stats = latency["generation"]
        print(f"                generation, per token ({stats['method']}): {_stats(stats)}")
    predicted, predictor = latency["predicted"], latency["predictor"]
    if predicted is not None and predictor is not None:
        print(
            f"                predicted forward {_ms(predicted['ms'])} (90%: "
            f"{predicted['low_ms']:.3g}-{predicted['high_ms']:.3g} ms; {predictor['clock']} "
            f"clock, held-out MAPE {predictor['mape']:.0%})"
        )
    else:
        print("                predicted: no latency predictor here (run `archsearch calibrate`)")
    device = latency.get("device")
    if device is not None:
        parts = " + ".join(f"{k} {v:.4g}" for k, v in device["parts_ms"].items() if k != "total")
        print(
            f"                on device {device['device']}: {_ms(device['ms'])}"
            + (f" ({parts} ms)" if parts else "")
            + f", 90%: {device['low_ms']:.4g}-{device['high_ms']:.4g} ms"
        )
    for name, budget in report["budgets"].items():
        if budget["value"] is None:
            print(f"  budget {name:<17} ?  ({budget['note']})")
            continue
        verdict = "ok" if budget["within"] else "OVER"
        value = format_value(budget["value"], budget["unit"])
        limit = format_value(budget["limit"], budget["unit"])
        print(f"  budget {name:<17} {value} / {limit}  {verdict}")
    if "seq_lens" in report:
        _print_sweep(report["seq_lens"])


def _print_sweep(rows: list[dict[str, Any]]) -> None:
    header = (
        f"  {'tokens':>7} {'MACs':>12} {'inference':>12} {'generation':>12} {'training':>12} "
        f"{'KV cache':>11} {'predicted':>10} {'measured':>10}"
    )
    print()
    print(header)
    for row in rows:
        memory = row["memory"]
        print(
            f"  {row['tokens']:>7} {row['macs'] / 1e6:>10,.0f}M {_mb(memory['inference']):>12} "
            f"{_mb(memory['generation']):>12} {_mb(memory['training']):>12} "
            f"{_mb(row['kv_cache']):>11} {_ms(row['predicted_ms']):>10} "
            f"{_ms(row['measured_ms']):>10}" + (f"  ({row['note']})" if row["note"] else "")
        )
