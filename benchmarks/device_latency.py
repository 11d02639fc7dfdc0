"""Latency predicted for devices that are not this machine, on HAT's published measurements.

For each of HAT's five latency files (Raspberry Pi 4, Xeon E5-2640, TITAN Xp; 2,000
SubTransformers each), fit a device predictor (``archsearch.costs.device``) on 80% of the rows
and test on the other 20%, for several split seeds; print per device the rows, the rows flagged
as measurement artefacts (left out of fit and test, reported apart), and held-out MAPE and mean
absolute error (ms) of the predictor against linear least squares on HAT's ten columns, for the
encoder, the decoder and their total. Also: the MAE over every held-out row, flagged ones
included, and least squares on the predictor's own features (unconstrained).

    python benchmarks/device_latency.py [--data DIR] [--seeds 0,1,2,3,4]

The data: HAT's ``latency_dataset/`` (Wang et al., ACL 2020; github.com/mit-han-lab/
hardware-aware-transformers; MIT licence, copyright the HAT authors), read from ``--data``
(default ``../shared/data/hat_latency`` beside the checkout). No timing happens here, so the
machine's load does not matter; fitting all five files for five seeds takes seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archsearch.costs.device import HAT_PARTS, held_out_report, observations  # noqa: E402
from archsearch.costs.device_data import HAT_ATTRIBUTION, read_table  # noqa: E402

PARTS = (*HAT_PARTS, "total")
MODELS = ("predictor", "linear", "linear_features")


def default_data() -> Path:
    for shared in (ROOT.parent / "shared", ROOT.parents[1] / "shared"):
        if (shared / "data" / "hat_latency").is_dir():
            return shared / "data" / "hat_latency"
    return ROOT.parent / "shared" / "data" / "hat_latency"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="HAT's CSV folder")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="80/20 split seeds")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    files = sorted(args.data.glob("*.csv"))
    if not files:
        print(f"no CSV files in {args.data}", file=sys.stderr)
        return 2
    print(f"data: {args.data} ({HAT_ATTRIBUTION})")
    print(f"80/20 splits, seeds {seeds}; figures are means over the splits; wins = splits where")
    print("the predictor's error is below linear least squares on HAT's ten columns\n")
    summary = []
    for path in files:
        table = read_table(path)
        obs = observations(table)
        reports = [held_out_report(obs, HAT_PARTS, seed=seed) for seed in seeds]
        flagged = np.mean([r["train_flagged"] + r["test_flagged"] for r in reports])
        print(f"{path.name}: {len(obs)} rows, {flagged:.0f} flagged as artefacts (mean)")
        print(
            f"  {'part':<8} {'MAPE ours':>9} {'linear':>8} {'wins':>5}  {'MAE ms ours':>11} "
            f"{'linear':>9} {'wins':>5}  {'lsq ours':>9}  {'MAE all rows':>17}"
        )
        for part in PARTS:
            cell = {
                (m, k): np.array([r["parts"][part][m][k] for r in reports])
                for m in (*MODELS, "predictor_all_rows", "linear_all_rows")
                for k in ("mape", "mae_ms")
            }
            mape_wins = int((cell["predictor", "mape"] < cell["linear", "mape"]).sum())
            mae_wins = int((cell["predictor", "mae_ms"] < cell["linear", "mae_ms"]).sum())
            mean = {key: float(values.mean()) for key, values in cell.items()}
            print(
                f"  {part:<8} {mean['predictor', 'mape']:>9.2%} {mean['linear', 'mape']:>8.2%} "
                f"{mape_wins:>3}/{len(seeds)}  {mean['predictor', 'mae_ms']:>11.4g} "
                f"{mean['linear', 'mae_ms']:>9.4g} {mae_wins:>3}/{len(seeds)}  "
                f"{mean['linear_features', 'mae_ms']:>9.4g}  "
                f"{mean['predictor_all_rows', 'mae_ms']:>8.4g} vs "
                f"{mean['linear_all_rows', 'mae_ms']:<6.4g}"
            )
            if part == "total":
                summary.append((path.name, mean["predictor", "mape"], mean["predictor", "mae_ms"]))
        print()
    print("total latency, held-out, per device (MAPE, MAE):")
    for name, mape, mae in summary:
        print(f"  {name:<36} {mape:6.2%} {mae:9.3g} ms")
    print(
        "\n'lsq ours': unconstrained least squares on the predictor's own features; 'MAE all "
        "rows': every held-out row, flagged ones included (ours vs linear)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
