"""``archsearch calibrate``: build this machine's latency predictor and report how good it is.

``--report`` adds the calibration report: per architecture family, analytic MACs against
FlopCounterMode, analytic peak memory against the live-tensor tracker (inference and training)
and predicted latency against measured. ``--no-fit`` reports with the stored predictor.

``--from-csv CSV --device NAME`` times nothing: it fits the latency predictor of another device
on measurements made there (HAT's published format or the generic one; ``--format``), prints
its held-out report and the rows it flagged as measurement artefacts, and stores it for
profiles whose workload names that device (``archsearch.costs.device``).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from archsearch.commands.measure import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    calibrate = subparsers.add_parser(
        "calibrate", help="build this machine's latency predictor; the calibration report"
    )
    calibrate.add_argument(
        "--samples", type=positive_int, default=100, help="architectures to time (default 100)"
    )
    calibrate.add_argument("--threads", type=positive_int, default=1, help="CPU threads")
    calibrate.add_argument("--seed", type=int, default=0, help="which random architectures")
    calibrate.add_argument(
        "--space",
        action="append",
        default=None,
        help="search space to draw from (repeatable; 'families' draws architectures with one "
        "family in every layer; default: efficient_lm, families and tiny_lm)",
    )
    calibrate.add_argument(
        "--report", action="store_true", help="also check MACs, memory and latency per family"
    )
    calibrate.add_argument(
        "--no-fit", action="store_true", help="keep the stored predictor (use with --report)"
    )
    calibrate.add_argument("--json", action="store_true", help="print JSON")
    device = calibrate.add_argument_group(
        "another device", "fit a device's predictor on measurements made there (times nothing)"
    )
    device.add_argument(
        "--from-csv", metavar="CSV", help="measurements: HAT's latency CSV or the generic format"
    )
    device.add_argument(
        "--format",
        choices=("auto", "hat", "generic"),
        default="auto",
        help="the CSV's format (default auto: HAT's when its header has HAT's columns)",
    )
    device.add_argument(
        "--device", help="the name profiles use for it (workload: {device: NAME}); required"
    )
    device.add_argument(
        "--tokens",
        type=positive_int,
        help="HAT format: tokens the rows were timed at (default: 23 for iwslt* files, else 30)",
    )
    calibrate.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    if args.from_csv is not None or args.device is not None:
        return handle_device(args)
    from archsearch.costs import calibration
    from archsearch.costs.predictor import cache_path, load_predictor, machine_info
    from archsearch.errors import InputError

    spaces = tuple(args.space) if args.space else tuple(calibration.DEFAULT_SPACES)
    for space in spaces:  # fail on a bad name before any timing
        from archsearch.space import load_space

        if space != calibration.FAMILIES:
            load_space(space)
    output: dict[str, Any] = {}
    if args.no_fit:
        predictor = load_predictor(args.threads)
        if predictor is None and not args.report:
            raise InputError(
                f"no stored predictor for {args.threads} thread(s) to report on", key="--no-fit"
            )
    else:
        info = machine_info(args.threads)
        if not args.json:
            print(
                f"timing {args.samples} architectures from {', '.join(dict.fromkeys(spaces))} "
                f"on {info['cpu']}, {args.threads} thread(s), torch {info['torch']}"
            )
        predictor = calibration.calibrate(
            args.samples,
            threads=args.threads,
            seed=args.seed,
            spaces=spaces,
            progress=None if args.json else _progress,
        )
    if predictor is not None:
        output["predictor"] = _predictor_summary(predictor, str(cache_path(args.threads)))
        if not args.json:
            _print_predictor(output["predictor"])
    if args.report:
        report = calibration.calibration_report(
            threads=args.threads, progress=None if args.json else _family_progress
        )
        output["report"] = report
        if not args.json:
            _print_report(report)
    if args.json:
        print(json.dumps(output, indent=2, default=_json_default))
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def _progress(done: int, total: int, sample: Any) -> None:
    if done % 10 == 0 or done == total:
        print(f"  {done}/{total} timed", flush=True)


def _family_progress(name: str) -> None:
    print(f"  checking {name}", flush=True)


def _predictor_summary(predictor: Any, path: str) -> dict[str, Any]:
    validation = {k: v for k, v in predictor.validation.items() if k != "predicted_ms"}
    return {
        "path": path,
        "machine": predictor.machine,
        "validation": validation,
        "sigma_log": predictor.sigma_log,
        "interval_factor_90": math.exp(1.645 * predictor.sigma_log),
        "coefficients_ms": predictor.coefficients(),
    }


def _print_predictor(summary: dict[str, Any]) -> None:
    validation, machine = summary["validation"], summary["machine"]
    print(f"latency predictor: {summary['path']}")
    print(
        f"  {machine.get('cpu')}, {machine.get('threads')} thread(s), torch "
        f"{machine.get('torch')}, {machine.get('clock', 'wall')} clock"
    )
    print(
        f"  held-out error ({validation['method']}, {validation['samples']} samples): "
        f"MAPE {validation['mape']:.1%}, median {validation['median_ape']:.1%}, "
        f"p90 {validation['p90_ape']:.1%}"
    )
    print(
        f"  uncertainty: sigma {summary['sigma_log']:.3f} in log space; 90% interval = "
        f"prediction x/÷ {summary['interval_factor_90']:.2f}"
    )
    repeat = validation.get("repeatability")
    if repeat:
        print(
            f"  noise floor: the same {repeat['samples']} architectures timed twice differ by "
            f"{repeat['mean_abs_difference']:.1%} on average (max "
            f"{repeat['max_abs_difference']:.0%})"
        )
    print("  coefficients (ms per unit; MACs in millions):")
    for name, value in summary["coefficients_ms"].items():
        if value > 0:
            print(f"    {name:<30} {value:.4g}")


def _pct(value: Any) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    return f"{value:+.1%}"


def _memory(figures: dict[str, Any]) -> str:
    analytic, measured = figures["analytic"] / 1e6, figures["measured"] / 1e6
    return f"{analytic:>8.1f}/{measured:<6.1f}MB {_pct(figures['error']):>7}"


def _print_report(report: dict[str, Any]) -> None:
    print()
    print(
        f"{'family':<22} {'MACs (FlopCounter)':>19} {'inference memory':>26} "
        f"{'training memory':>26} {'latency predicted/measured':>30}"
    )
    for name, row in report["families"].items():
        macs, memory, latency = row["macs"], row["memory"], row["latency"]
        inf, train = memory["inference"], memory["training"]
        measured = latency["measured"]["median_ms"]
        if "predicted" in latency:
            lat = f"{latency['predicted']['ms']:.3g}/{measured:.3g} ms {_pct(latency['error'])}"
        else:
            lat = f"-/{measured:.3g} ms" + (" (not predicted)" if "note" in latency else "")
        print(f"{name:<22} {_pct(macs['error']):>19} {_memory(inf)} {_memory(train)} {lat:>30}")
    summary = report["summary"]
    print(
        f"worst |error|: MACs {summary['max_abs_macs_error']:.2%}, inference memory "
        f"{summary['max_abs_inference_memory_error']:.2%}, training memory "
        f"{summary['max_abs_training_memory_error']:.2%}"
        + (
            f"; latency MAPE over these held-out families {summary['latency_mape_held_out']:.1%}"
            if summary["latency_mape_held_out"] is not None
            else ""
        )
    )
    if "max_abs_cuda_training_memory_error" in summary:
        device = next(iter(report["families"].values()))["memory"]["device"]
        print(
            f"on {device} (torch.cuda.max_memory_allocated): analytic inference memory within "
            f"{summary['max_abs_cuda_inference_memory_error']:.2%}, training memory within "
            f"{summary['max_abs_cuda_training_memory_error']:.2%}"
        )
    for note in report["notes"]:
        print(f"note: {note}")


# ---- another device ----------------------------------------------------------------------------


def handle_device(args: argparse.Namespace) -> int:
    from archsearch.costs.device import check_device_name, device_path, fit_device
    from archsearch.costs.device_data import read_table
    from archsearch.errors import InputError

    if args.from_csv is None:
        raise InputError("needs --from-csv CSV: the measurements to fit on", key="--device")
    if args.device is None:
        raise InputError("needs --device NAME: the name profiles will use", key="--from-csv")
    for flag, given in (("--report", args.report), ("--no-fit", args.no_fit)):
        if given:
            raise InputError("times this machine; it does not combine with --from-csv", key=flag)
    try:
        check_device_name(args.device)
    except InputError as exc:
        raise InputError(exc.message, key="--device") from None
    table = read_table(args.from_csv, args.format)
    predictor = fit_device(table, args.device, tokens=args.tokens, seed=args.seed)
    path = predictor.save(device_path(args.device))
    if args.json:
        print(json.dumps({"path": str(path), **predictor.to_dict()}, indent=2))
        return 0
    print_device_report(predictor, str(path))
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_device_report(predictor: Any, path: str) -> None:
    """The calibration report of a device predictor, in a terminal's width."""
    from archsearch.costs.device import flagged_runs

    source, validation = predictor.source, predictor.validation
    print(f"device {predictor.device}: {source['rows']} rows of {source['path']}")
    print(f"  format {source['format']}; timed: {predictor.workload['timed']}")
    if source.get("attribution"):
        print(f"  {source['attribution']}")
    runs = flagged_runs(predictor.flagged)
    print(
        f"  flagged as measurement artefacts and left out of the fit: {source['flagged_rows']} "
        f"row(s) in {len(runs)} run(s) of consecutive lines"
    )
    for run in sorted(runs, key=lambda r: -r["rows"])[:5]:
        ratios = ", ".join(f"{p} {r:.2f}x" for p, r in run["median_ratio"].items())
        print(
            f"    lines {run['first_line']}-{run['last_line']} ({run['rows']} rows, off in "
            f"{'+'.join(run['parts'])}): measured / predicted {ratios}"
        )
    if len(runs) > 5:
        print(f"    ... {len(runs) - 5} shorter run(s); --json lists every flagged row")
    print(
        f"  held out: {validation['method']} ({validation['test_flagged']} of the "
        f"{validation['test_rows']} held-out rows flagged)"
    )
    print(
        f"    {'part':<8} {'MAPE':>8} {'linear':>8} {'MAE ms':>10} {'linear':>10}"
        f" {'MAE, all held-out rows':>24}"
    )
    for part, entry in validation["parts"].items():
        ours, linear = entry["predictor"], entry["linear"]
        print(
            f"    {part:<8} {_fmt(ours['mape'], '.2%'):>8} {_fmt(linear['mape'], '.2%'):>8} "
            f"{_fmt(ours['mae_ms'], '.4g'):>10} {_fmt(linear['mae_ms'], '.4g'):>10} "
            f"{_fmt(entry['predictor_all_rows']['mae_ms'], '.4g'):>11} vs "
            f"{_fmt(entry['linear_all_rows']['mae_ms'], '.4g'):<10}"
        )
    if source["rows"] < 100:
        print(f"    only {source['rows']} rows: too few to trust these figures (collect hundreds)")
    print(
        "    linear: least squares with an intercept on the CSV's own columns; 90% interval "
        f"of a prediction: x/÷ {math.exp(1.645 * predictor.sigma_log):.3f}"
    )
    print(f"  stored: {path}")
    print(f"  use it: a profile with `workload: {{device: {predictor.device}}}`")
