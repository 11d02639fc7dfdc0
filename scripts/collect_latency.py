#!/usr/bin/env python3
"""Time architectures of a search space on THIS device and write the CSV a device predictor
is fitted on (archsearch's generic format, ``archsearch.costs.device_data``).

Run it on the target device (a phone board, a Raspberry Pi, another server), copy the CSV back,
and fit there: ``archsearch calibrate --from-csv latency.csv --device NAME``.

    python scripts/collect_latency.py --space tiny_lm --samples 200 --tokens 128 --out pi.csv

Needs on the device: Python 3.10+, PyTorch, PyYAML, and archsearch's source (this repository:
run the script from its root, or ``pip install --no-deps .``); not Optuna, Ray or Rich. Each
architecture is built with random weights (``archsearch.build_model``, seed 0) and timed with
the rules of ``archsearch measure`` (``archsearch.costs.latency.MEASURE_TIMING``: warm-up calls,
then repeats until the median is stable), on the wall clock, with ``--threads`` threads: one
forward over ``--batch`` sequences of ``--tokens`` tokens (seq2seq: as many source and target
tokens, teacher-forced). The CSV is rewritten after every architecture, so an interrupted run
keeps what it timed; running again with the same arguments times only what is missing.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path and (ROOT / "archsearch").is_dir():
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", required=True, help="built-in space name or YAML path")
    parser.add_argument("--samples", type=int, default=100, help="architectures to time")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=1, help="sequences per forward")
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing")
    parser.add_argument("--seed", type=int, default=0, help="which architectures")
    parser.add_argument("--device", default="", help="a note written in every row")
    parser.add_argument("--out", required=True, help="the CSV to write")
    args = parser.parse_args(argv)
    for name in ("samples", "tokens", "batch", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")

    from archsearch.errors import InputError

    try:
        return collect(args)
    except InputError as exc:
        print(f"collect_latency: {exc}", file=sys.stderr)
        return 2


def collect(args: argparse.Namespace) -> int:
    import torch

    from archsearch.costs.device_data import generic_record, write_generic
    from archsearch.costs.latency import MEASURE_TIMING, measure_forward
    from archsearch.errors import InputError
    from archsearch.space import load_space

    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    out = Path(args.out)
    records = _existing(out)
    rng = random.Random(args.seed)
    drawn, attempts = 0, 0
    while drawn < args.samples:
        attempts += 1
        if attempts > 100 * args.samples:
            raise InputError("too few valid architectures in this space", key="--space")
        values = space.sample(rng)
        if space.violations(values):
            continue
        try:
            config = space.to_config(values)
        except InputError:
            continue
        if args.tokens > config.max_seq_len:
            config = config.replace(max_seq_len=args.tokens)
        drawn += 1
        if drawn <= len(records):
            continue  # timed by an earlier, interrupted run with the same seed
        started = time.perf_counter()
        stats = measure_forward(
            config, args.tokens, args.batch, threads=args.threads, options=MEASURE_TIMING
        )
        record = generic_record(
            config,
            args.tokens,
            args.batch,
            round(stats.median, 6),
            latency_iqr_ms=round(stats.iqr, 6),
            repeats=stats.repeats,
            warmup=stats.warmup,
            threads=args.threads,
            clock=MEASURE_TIMING.clock,
            device=args.device,
        )
        records.append({k: v for k, v in record.items() if v != ""})
        write_generic(out, records)
        print(
            f"{drawn}/{args.samples}: {stats.median:.4g} ms ({stats.repeats} repeats, "
            f"{time.perf_counter() - started:.1f} s)",
            flush=True,
        )
    print(f"wrote {len(records)} rows to {out}")
    return 0


def _existing(path: Path) -> list[dict[str, str]]:
    """Rows an earlier run wrote (cells as text; empty cells dropped)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


if __name__ == "__main__":
    sys.exit(main())
