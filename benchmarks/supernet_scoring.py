"""What a supernet score costs and how noisy it is, against brief training, in one run.

Run: .venv/bin/python benchmarks/supernet_scoring.py [--brief 3] [--noise 40]

1. Candidates per CPU-second: ``--brief`` configurations near the mobile_100M budget (MACs in
   [50M, 100M], sampled as `archsearch fidelity` samples them) are scored by the supernet
   (``inherited_bpb``: extracting the sub-network and validating it on 4,096 bytes) and trained
   briefly by lm_brief (``evaluate``), each on one thread; the ratio of their CPU seconds is the
   speed-up at equal MACs (target: at least 50x). The supernet's own training is a one-off cost,
   printed beside it and amortised over a run's candidates.
2. Evaluation noise: ``--noise`` configurations are scored on validation batches 0-7 and again on
   batches 8-15 (disjoint text of the same size). If the 4,096-byte score were too noisy to rank,
   the two rankings would disagree; printed: Kendall tau between them, and the spread of the
   difference between the two against the spread of the scores themselves.

The supernet is the one `archsearch run` uses (trained and cached on first use:
``$ARCHSEARCH_CACHE_DIR``, or ``~/.cache/archsearch``). Timings depend on the machine's load:
read the ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brief", type=int, default=3, help="configurations trained briefly")
    parser.add_argument("--noise", type=int, default=40, help="configurations scored twice")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from archsearch.evaluate.data import make_batches
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.evaluate.train import evaluate, validate
    from archsearch.fidelity import kendall_tau, sample_region
    from archsearch.profiles import load_profile
    from archsearch.space import load_space
    from archsearch.supernet.model import sample_config
    from archsearch.supernet.scoring import inherited_bpb, scoring_recipe
    from archsearch.supernet.store import ensure_supernet, load_supernet

    torch.set_num_threads(1)
    space, profile = load_space("oneshot_lm"), load_profile("mobile_100M")
    recipe, brief = load_recipe("supernet_brief"), load_recipe("lm_brief")
    path = ensure_supernet(space, recipe, threads=2, log=print)
    supernet, record = load_supernet(path)
    print(
        f"supernet: {record['step']} steps, {record['tokens']:,} sub-network tokens; trained "
        f"in {record.get('wall_s') or 0:.0f} s wall, {record.get('cpu_s') or 0:.0f} CPU s "
        "(once per space, recipe, corpus and torch version)"
    )

    near = sample_region(space, profile, brief, args.brief, seed=args.seed)
    print(f"\n1. {len(near)} configurations with MACs in [50M, 100M], one thread each")
    ratios = []
    for candidate in near:
        config = candidate.config
        inherited_bpb(supernet, config, recipe)  # first call builds the batches: not timed
        cpu = time.process_time()
        score = inherited_bpb(supernet, config, recipe)
        score_cpu = time.process_time() - cpu
        cpu = time.process_time()
        result = evaluate(config, brief, threads=1)
        train_cpu = time.process_time() - cpu
        ratios.append(train_cpu / score_cpu)
        print(
            f"  {candidate.macs / 1e6:6.1f}M MACs: supernet {score:.3f} bpb in {score_cpu:.2f} "
            f"CPU s; brief training {result.val_bpb:.3f} bpb in {train_cpu:.1f} CPU s: "
            f"{ratios[-1]:.0f}x"
        )
    median = statistics.median(ratios)
    print(f"  candidates per CPU-second, supernet / brief training: {median:.0f}x (median)")

    rng = random.Random(args.seed)
    configs = [sample_config(space, rng) for _ in range(args.noise)]
    scoring = scoring_recipe(recipe)
    halves = []
    for first in (0, scoring.eval_batches):
        shifted = _Shifted(make_batches(scoring), first)
        halves.append([validate(supernet.extract(c), shifted, scoring)["val_bpb"] for c in configs])
    differences = [a - b for a, b in zip(*halves, strict=True)]
    print(f"\n2. {args.noise} random configurations, scored on two disjoint halves")
    print(f"  Kendall tau between the two rankings: {kendall_tau(*halves):.3f}")
    print(
        f"  spread of scores (sd): {statistics.stdev(halves[0]):.4f} bpb; of the difference "
        f"between halves (sd): {statistics.stdev(differences):.4f} bpb"
    )


class _Shifted:
    """Validation batches ``first``, ``first + 1``, ... as batches 0, 1, ..."""

    def __init__(self, batches, first: int):
        self.batches, self.first = batches, first
        self.answers_only = batches.answers_only
        self.fingerprint = batches.fingerprint

    def valid(self, index: int):
        return self.batches.valid(self.first + index)


if __name__ == "__main__":
    main()
