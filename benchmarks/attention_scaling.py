"""Time and peak memory of each attention family against full attention, T = 512 .. 8192.

Run: .venv/bin/python benchmarks/attention_scaling.py [--lengths 512,1024,2048,4096,8192]

Each (family, length) runs in a fresh subprocess on one thread: forward latency is the median
of a few repeats after a warm-up; peak memory is the growth of the process's peak RSS over the
forwards (input and weights already allocated). Printed as ratios against full attention
measured in the same run, plus the scaling exponent between the two longest lengths
(2 = quadratic, 1 = linear).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from archsearch.families import specs

# Each attention family's "scaling" example (its spec's).
FAMILIES = {
    name: example
    for name, spec in specs("attention").items()
    if (example := spec.example("scaling")) is not None
}

CHILD = r"""
import json, resource, statistics, sys, time
import torch
from archsearch import ArchConfig
from archsearch.families import BlockContext, attention_spec
torch.set_num_threads(1)
kind, length, extra = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
arch = ArchConfig.from_dict({"n_layers": 1, "d_model": 128, "heads": 4, "attention": kind,
                             "max_seq_len": length, **extra})
ctx = BlockContext(layer=arch.layers[0], arch=arch, causal=True)
torch.manual_seed(0)
module = attention_spec(kind).build(ctx).eval()
x = torch.randn(1, length, 128)
with torch.no_grad():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    module(x)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        module(x)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
macs = attention_family(kind).macs(ctx, length, 0)
print(json.dumps({"seconds": statistics.median(times), "peak_kib": max(after - before, 1),
                  "macs": macs}))
"""


def measure(kind: str, length: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(length), json.dumps(FAMILIES[kind])],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,1024,2048,4096,8192")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    results = {kind: {n: measure(kind, n) for n in lengths} for kind in FAMILIES}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("forward, batch 1, d_model 128, 4 heads, causal, 1 thread; ratio = family / full")
    print(
        f"{'family':<10} {'T':>6} {'ms':>9} {'x full':>7} {'peak MiB':>9} {'x full':>7} {'GMAC':>7}"
    )
    for kind, rows in results.items():
        for n, row in rows.items():
            base = results["full"][n]
            if "error" in row:
                print(f"{kind:<10} {n:>6}  error: {row['error']}")
                continue
            print(
                f"{kind:<10} {n:>6} {row['seconds'] * 1e3:>9.1f} "
                f"{row['seconds'] / base['seconds']:>7.2f} {row['peak_kib'] / 1024:>9.0f} "
                f"{row['peak_kib'] / base['peak_kib']:>7.2f} {row['macs'] / 1e9:>7.2f}"
            )
    a, b = lengths[-2], lengths[-1]
    print(f"\nscaling exponent of time from T={a} to T={b} (2 = quadratic, 1 = linear):")
    for kind, rows in results.items():
        if "error" in rows[a] or "error" in rows[b]:
            continue
        exponent = math.log(rows[b]["seconds"] / rows[a]["seconds"]) / math.log(b / a)
        mac_exponent = math.log(rows[b]["macs"] / rows[a]["macs"]) / math.log(b / a)
        print(f"  {kind:<10} time {exponent:5.2f}   MACs {mac_exponent:5.2f}")


if __name__ == "__main__":
    main()
