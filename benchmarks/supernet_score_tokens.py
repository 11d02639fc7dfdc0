"""How much of the supernet's ranking error is evaluation noise: Kendall tau against the kept 8x
references when each candidate is scored on more validation bytes.

Run: .venv/bin/python benchmarks/supernet_score_tokens.py [--tokens 4096,16384,65536]
     [--seeds 5] [REPORT ...]

Each REPORT is a kept `archsearch fidelity --json` report of `supernet_brief`
(default: `benchmarks/fidelity/oneshot_lm.mobile_100M.s*.seeds.json`); its configurations and
their 8x `long_bpb` are read from it, nothing is trained but the supernets of recipe seeds 0 to
``--seeds`` - 1 missing from the cache (``$ARCHSEARCH_CACHE_DIR``, the ones `fidelity
--supernet-seeds` trains). Every score uses the first N bytes of the same validation text (the
references' own 16,384 and beyond), so a gain from more bytes is noise removed, not other text.
Printed per report and token count: each supernet training's tau, their mean, and the CPU
seconds one score took (one thread).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path)
    parser.add_argument("--tokens", default="4096,16384,65536")
    parser.add_argument("--seeds", type=int, default=5, help="supernet trainings (recipe seeds)")
    args = parser.parse_args()
    reports = args.reports or sorted((ROOT / "benchmarks" / "fidelity").glob("*.seeds.json"))

    import torch

    from archsearch import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import kendall_tau
    from archsearch.space import load_space
    from archsearch.supernet.scoring import loaded_supernet, score_from_file
    from archsearch.supernet.store import ensure_supernet

    torch.set_num_threads(1)
    recipe = load_recipe("supernet_brief")
    space = load_space("oneshot_lm")
    paths = [
        ensure_supernet(space, recipe.replace(seed=recipe.seed + k), threads=2, log=print)
        for k in range(args.seeds)
    ]
    for path in paths:
        loaded_supernet(path)  # loaded once, before any timing
    for report in reports:
        results = json.loads(report.read_text())["results"]
        configs = [ArchConfig.from_dict(r["arch"]) for r in results]
        long_bpb = [r["long_bpb"] for r in results]
        for tokens in (int(t) for t in args.tokens.split(",")):
            settings = dataclasses.replace(recipe.supernet, score_tokens=tokens)
            scoring = recipe.replace(supernet=settings)
            taus, started = [], time.process_time()
            for path in paths:
                scores = [score_from_file(path, c, scoring) for c in configs]
                taus.append(kendall_tau(scores, long_bpb))
            each = (time.process_time() - started) / (len(paths) * len(configs))
            print(
                f"{report.name}  {tokens:>6} bytes  tau "
                + " ".join(f"{t:.3f}" for t in taus)
                + f"  mean {statistics.mean(taus):.3f}  ({each:.2f} CPU s a score)",
                flush=True,
            )


if __name__ == "__main__":
    main()
