"""Would per-family offsets learned from brief training correct the supernet's ranking?

Run: .venv/bin/python benchmarks/supernet_calibration.py

`benchmarks/supernet_families.py` measures each family's offset from full attention twice: by
the supernet's inherited-weights score and by brief from-scratch training, both on a 4x256
Transformer with the family in every layer. The supernet rates LSRA about 0.47 bpb worse than
training does. This benchmark asks whether adding those measured offsets back to the supernet's
scores (a candidate is corrected by the mean of its layers' attention and feed-forward offsets,
or by their sum over the variants' 4 layers) ranks the 12 long-training references of
`benchmarks/fidelity/oneshot_lm.mobile_100M.s0.jsonl` better. Both journals are read, nothing is
trained; the supernet is the cached one of `supernet_brief` (trained on first use). The
references were not used to learn the offsets, so the comparison is held out.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REFERENCES = ROOT / "benchmarks" / "fidelity" / "oneshot_lm.mobile_100M.s0.jsonl"


def main() -> None:
    import fidelity_references
    import supernet_families
    import torch

    from archsearch import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import Journal, correlation, job_key
    from archsearch.space import load_space
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    torch.set_num_threads(1)
    candidates, _, jobs = fidelity_references.kept_plan()
    brief, scoring = load_recipe("lm_brief"), load_recipe("supernet_brief")
    path = ensure_supernet(load_space("oneshot_lm"), scoring, threads=1, log=print)

    variants = supernet_families.variants()
    trained = Journal(supernet_families.JOURNAL).read()
    missing = [n for n, a in variants.items() if job_key("short", a, brief, ()) not in trained]
    if missing:
        sys.exit(f"run benchmarks/supernet_families.py first: {', '.join(missing)} not trained")
    by_supernet = {
        n: score_from_file(path, ArchConfig.from_dict(a), scoring) for n, a in variants.items()
    }
    by_training = {
        n: trained[job_key("short", a, brief, ())]["val_bpb"] for n, a in variants.items()
    }
    offsets = {
        tuple(name.split()): (by_training[name] - by_training["attention full"])
        - (by_supernet[name] - by_supernet["attention full"])
        for name in variants
    }
    print("offset added per family (training's offset minus the supernet's):")
    print("  " + ", ".join(f"{k}:{n} {v:+.3f}" for (k, n), v in offsets.items()))

    done = Journal(REFERENCES).read()
    rows = []
    for candidate in candidates:
        refs = fidelity_references.references_of(candidate, jobs, done)
        if not refs:
            continue
        layers = candidate.config.layers
        total = sum(
            offsets.get(("attention", layer.attention), 0.0) + offsets.get(("ffn", layer.ffn), 0.0)
            for layer in layers
        )
        raw = score_from_file(path, candidate.config, scoring)
        rows.append((sum(refs) / len(refs), raw, raw + total / len(layers), raw + total / 4))
    reference = [row[0] for row in rows]
    print(f"\nKendall tau against the {len(rows)} long-training references:")
    for column, name in ((1, "raw supernet"), (2, "layer-mean offsets"), (3, "per-layer offsets")):
        found = correlation([row[column] for row in rows], reference)
        low, high = found["kendall_tau_interval"]
        print(f"  {name:<20} {found['kendall_tau']:6.3f} [{low:6.3f}, {high:6.3f}]")


if __name__ == "__main__":
    main()
