"""Does the supernet rank the families like training does? One model, each family swapped in.

Run: .venv/bin/python benchmarks/supernet_families.py [--evaluator supernet_brief] [--workers 2]

The Transformer baseline of mobile_100M (4 layers, d_model 256, 8 heads, FFN ratio 4) is
rebuilt with each attention family of `oneshot_lm` in every layer (its family setting at a
middle value), and with each feed-forward family; every variant is scored by the supernet of
``--evaluator`` (trained and cached on first use) and trained briefly by lm_brief. Printed: both
figures per variant, each family's offset from full attention (dense FFN) under each, the
difference of the offsets (the supernet's bias for or against the family), and Kendall's tau
between the two orders. A family the supernet under-rates is one a search will not find.

The brief runs are kept in ``benchmarks/fidelity/families.oneshot_lm.jsonl`` under the key
`archsearch fidelity` gives the same job, so a rerun (another supernet recipe) trains nothing.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

JOURNAL = ROOT / "benchmarks" / "fidelity" / "families.oneshot_lm.jsonl"
BASE: dict[str, Any] = {
    "vocab_size": 256,
    "max_seq_len": 128,
    "n_layers": 4,
    "d_model": 256,
    "heads": 8,
    "attention": "full",
    "ffn": "dense",
    "ffn_ratio": 4,
}
ATTENTION = {
    "full": {},
    "local": {"window": 32},
    "linformer": {"linformer_k": 64},
    "performer": {"performer_features": 64},
    "lsh": {"lsh_bucket_size": 32},
    "lsra": {"lsra_split": 0.5, "conv_kernel": 7},
}
FFN = {"switch_moe": {"experts": 4}, "sparse": {"sparsity": 4}}
LSRA_SPLITS = (0.25, 0.5, 0.75)  # the share of channels on LSRA's attention branch


def split_variants() -> dict[str, dict[str, Any]]:
    """The LSRA variant with each split: the convolution branch gets the other channels."""
    lsra = {**BASE, "attention": "lsra", **ATTENTION["lsra"]}
    return {f"lsra split {split}": {**lsra, "lsra_split": split} for split in LSRA_SPLITS}


def variants() -> dict[str, dict[str, Any]]:
    found = {
        f"attention {name}": {**BASE, "attention": name, **extra}
        for name, extra in ATTENTION.items()
    }
    found |= {f"ffn {name}": {**BASE, "ffn": name, **extra} for name, extra in FFN.items()}
    return found


def brief_run(arch: dict[str, Any]) -> dict[str, Any]:
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import run_job

    return run_job("short", arch, load_recipe("lm_brief"), [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluator", default="supernet_brief", help="a supernet recipe")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from archsearch import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import Journal, job_key, kendall_tau
    from archsearch.space import load_space
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    space, recipe, brief = (
        load_space("oneshot_lm"),
        load_recipe(args.evaluator),
        load_recipe("lm_brief"),
    )
    models = variants() | split_variants()
    journal = Journal(JOURNAL)
    held = journal.read()
    keys = {name: job_key("short", arch, brief, ()) for name, arch in models.items()}
    missing = [name for name in models if keys[name] not in held]
    if missing:
        print(f"training {len(missing)} variant(s) briefly (lm_brief), {args.workers} at a time")
        with ProcessPoolExecutor(args.workers) as pool:
            for name, outcome in zip(
                missing, pool.map(brief_run, [models[n] for n in missing]), strict=True
            ):
                journal.append(keys[name], outcome)
                held[keys[name]] = outcome
    path = ensure_supernet(space, recipe, threads=args.workers, log=print)
    scores = {
        name: score_from_file(path, ArchConfig.from_dict(arch), recipe, threads=2)
        for name, arch in models.items()
    }
    trained = {name: held[keys[name]]["val_bpb"] for name in models}
    print(
        f"\nsupernet of {recipe.name} ({path.parent.name}) against lm_brief, "
        "variants of a 4x256 Transformer"
    )
    print(
        f"{'variant':22} {'supernet':>9} {'brief':>7} {'offset sn':>9} {'offset br':>9} {'bias':>7}"
    )
    for name in models:
        offset_sn = scores[name] - scores["attention full"]
        offset_br = trained[name] - trained["attention full"]
        print(
            f"{name:22} {scores[name]:9.4f} {trained[name]:7.4f} {offset_sn:+9.4f} "
            f"{offset_br:+9.4f} {offset_sn - offset_br:+7.4f}"
        )
    names = list(variants())
    tau = kendall_tau([scores[n] for n in names], [trained[n] for n in names])
    print(
        f"Kendall tau, supernet order against brief training's: {tau:.3f} over {len(names)} "
        "variants"
    )
    print(
        "bias > 0: the supernet rates the family worse, relative to full attention, than "
        "training does"
    )
    print("\nLSRA by its split (attention share; the convolution branch has the rest):")
    print(f"{'variant':22} {'supernet':>9} {'brief':>7}")
    for name in split_variants():
        print(f"{name:22} {scores[name]:9.4f} {trained[name]:7.4f}")


if __name__ == "__main__":
    main()
