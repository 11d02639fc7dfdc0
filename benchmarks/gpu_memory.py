"""Does a candidate that meets gpu16_train's 15 GB budget fit on a GPU? Analytic training and
inference memory against the CUDA caching allocator's peak, per family, near the budget.

Run on a machine with a CUDA device: python benchmarks/gpu_memory.py [--json]

Each family's representative architecture (``calibration.FAMILY_ARCHS``) is widened to a model
a 16 GB GPU would train (d_model 512, 6 layers, 2048 positions) and given the largest batch, up
to the profile's 16, whose analytic training memory stays within the profile's budget. Both
workloads are then measured on the device (``archsearch.costs.cuda_memory``: the allocator's
peak above the cuBLAS workspaces; those, and the CUDA context the process holds outside the
allocator, are printed apart). Printed as ratios analytic / measured: 1.00 means the budget
check sees exactly what the GPU allocates; below 1 the search would admit a candidate that
needs more than it was told.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from archsearch.config import ArchConfig
from archsearch.costs.calibration import BASE_ARCH, FAMILY_ARCHS
from archsearch.costs.cuda_memory import measure_config_on_device, workspace_baseline
from archsearch.costs.peak_bytes import inference_memory, training_memory
from archsearch.profiles import load_profile

WIDE = {"d_model": 512, "n_layers": 6, "heads": 8, "ffn_ratio": 4, "max_seq_len": 2048}


def largest_batch(config: ArchConfig, tokens: int, most: int, budget: float) -> int:
    """The largest batch (at most ``most``) whose analytic training peak fits ``budget``."""
    batch = most
    while batch > 1 and training_memory(config, tokens, batch).peak > budget:
        batch -= 1
    return batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="gpu16_train")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_memory.py: no CUDA device here; run it on a GPU machine", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    profile = load_profile(args.profile)
    tokens = profile.workload.tokens or profile.convention.tokens
    most = profile.workload.batch_size
    budget = profile.budgets["train_memory"]
    rows = []
    for name, extra in FAMILY_ARCHS.items():
        config = ArchConfig.from_dict({**BASE_ARCH, **WIDE, **extra})
        batch = largest_batch(config, tokens, most, budget)
        analytic_train = training_memory(config, tokens, batch).peak
        analytic_inf = inference_memory(config, tokens, batch).peak
        measured = measure_config_on_device(config, tokens, batch)
        # the training step's peak of what the allocator reserved from the device (its figure
        # plus the workspaces plus blocks it could not reuse): what a card must really hold
        reserved = torch.cuda.max_memory_reserved()
        rows.append(
            {
                "family": name,
                "batch": batch,
                "tokens": tokens,
                "training": {"analytic": analytic_train, "measured": measured.training},
                "inference": {"analytic": analytic_inf, "measured": measured.inference},
                "reserved_peak": reserved,
                "fits_budget": measured.training <= budget,
            }
        )
        if not args.json:
            print(_line(rows[-1]), flush=True)
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "profile": profile.name,
        "budget_bytes": budget,
        "cublas_workspaces_bytes": workspace_baseline(),
        "context_bytes": _context_bytes(),
        "families": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        workloads = ("training", "inference")
        ratios = [r[w]["analytic"] / r[w]["measured"] for r in rows for w in workloads]
        needs = max(r["reserved_peak"] for r in rows) + report["context_bytes"]
        print(
            f"largest device need (reserved peak + CUDA context): {needs / 1e9:.2f} GB "
            f"for a {budget / 1e9:.0f} GB budget"
        )
        print(
            f"{report['device']}, torch {report['torch']}: analytic/measured from "
            f"{min(ratios):.3f} to {max(ratios):.3f}; cuBLAS workspaces "
            f"{report['cublas_workspaces_bytes'] / 2**20:.0f} MiB and the CUDA context "
            f"{report['context_bytes'] / 2**20:.0f} MiB outside every figure"
        )
    return 0


def _context_bytes() -> int:
    """Device memory this process holds outside PyTorch's allocator (CUDA context, kernels):
    what the device reports used, less what the allocator has reserved (the device is ours)."""
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    return total - free - torch.cuda.memory_reserved()


def _line(row: dict) -> str:
    train, inf = row["training"], row["inference"]
    return (
        f"{row['family']:<22} batch {row['batch']:>2} x {row['tokens']}: training "
        f"{train['analytic'] / 1e9:6.2f}/{train['measured'] / 1e9:6.2f} GB "
        f"(x{train['analytic'] / train['measured']:.3f}), inference "
        f"{inf['analytic'] / 1e9:5.2f}/{inf['measured'] / 1e9:5.2f} GB "
        f"(x{inf['analytic'] / inf['measured']:.3f}), reserved {row['reserved_peak'] / 1e9:.2f} GB"
        f"{'' if row['fits_budget'] else '  OVER BUDGET'}"
    )


if __name__ == "__main__":
    sys.exit(main())
