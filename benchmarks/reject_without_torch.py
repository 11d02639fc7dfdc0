"""Time to reject an infeasible candidate in a process that never imports torch.

Run: .venv/bin/python benchmarks/reject_without_torch.py [--repeats 2000]

Each measurement runs in a fresh interpreter. The torch-free one installs a meta-path finder
that refuses ``torch``, loads ``efficient_lm`` and ``mobile_100M``, finds the first sampled
candidate (seed 0) that is valid but over the MAC budget, and times the driver's verdict on it
(``search.verdict.judge``: constraints, ``ArchConfig``, analytic costs, budgets), median over
``--repeats`` calls; it also reports the wall time from interpreter start to the first verdict.
A second run installs no finder ("as it comes": whatever judging imports by itself) and the
reference run imports torch first (as judging did when costs read the torch model registry).
Printed: all three, and the ratio of the reference to the torch-free start-to-verdict time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
start = time.perf_counter()
if sys.argv[1] == "block":
    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError(f"torch is blocked ({name})")
            return None
    sys.meta_path.insert(0, NoTorch())
elif sys.argv[1] == "torch":
    import torch  # noqa: F401
import json, random, statistics
from archsearch import load_profile, load_space
from archsearch.search.verdict import judge

space, profile = load_space("efficient_lm"), load_profile("mobile_100M")
rng = random.Random(0)
while True:
    values = space.sample(rng)
    verdict = judge(space, profile, values)
    if verdict.over_budget and not verdict.invalid:
        break
first = time.perf_counter() - start
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    judge(space, profile, values)
    times.append(time.perf_counter() - t0)
print(json.dumps({
    "first_verdict_s": first,
    "judge_us": statistics.median(times) * 1e6,
    "reason": verdict.reason,
    "torch_loaded": "torch" in sys.modules,
}))
"""


def run(mode: str, repeats: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args()
    free = run("block", args.repeats)
    plain = run("plain", args.repeats)
    loaded = run("torch", args.repeats)
    print(f"candidate: {free['reason']}")
    print(f"{'process':<16} {'torch loaded':>12} {'start->verdict s':>17} {'verdict us':>11}")
    for name, row in (("torch blocked", free), ("as it comes", plain), ("torch imported", loaded)):
        print(
            f"{name:<16} {row['torch_loaded']!s:>12} {row['first_verdict_s']:>17.3f} "
            f"{row['judge_us']:>11.1f}"
        )
    ratio = loaded["first_verdict_s"] / free["first_verdict_s"]
    print(f"start to first rejection: {ratio:.1f}x faster without torch")


if __name__ == "__main__":
    main()
