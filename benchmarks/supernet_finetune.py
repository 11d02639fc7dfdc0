"""Where does the supernet's LSRA bias live? Fine-tune inherited weights briefly and see.

Run: .venv/bin/python benchmarks/supernet_finetune.py [--steps 40]

`benchmarks/supernet_families.py` finds the supernet rating LSRA 0.21 / 0.47 / 0.67 bpb worse
than brief training does at lsra_split 0.75 / 0.5 / 0.25 (the more channels on the convolution
branch, the larger the bias). Here each of those 4x256 LSRA variants, and the full-attention
Transformer as the reference, is extracted from the cached `supernet_brief` supernet and
fine-tuned for ``--steps`` steps (AdamW, lr 1e-3, batches the supernet never trained on) three
ways: only the convolution branch, everything but it, and everything; its score (the supernet's
validation bytes) is printed before and after. If a few steps on the convolution branch alone
closed the gap, the branch would simply be under-trained; if the other weights close it, the
shared weights serve LSRA's block badly (they are trained mostly inside other families' blocks);
the last three ways say which of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FIRST_STEP = 10_000  # training batches from here on: past the supernet's own 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    import supernet_families
    import torch
    import torch.nn.functional as F

    from archsearch import ArchConfig
    from archsearch.evaluate.batch import IGNORE
    from archsearch.evaluate.data import make_batches
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.evaluate.train import validate
    from archsearch.space import load_space
    from archsearch.supernet.scoring import scoring_recipe
    from archsearch.supernet.store import ensure_supernet, load_supernet

    torch.set_num_threads(1)
    recipe = load_recipe("supernet_brief")
    supernet = load_supernet(ensure_supernet(load_space("oneshot_lm"), recipe, threads=1))[0]
    scoring = scoring_recipe(recipe)
    valid, train = make_batches(scoring), make_batches(recipe)

    def tuned(arch: dict, trains: Callable[[str], bool]) -> tuple[float, float]:
        model = supernet.extract(ArchConfig.from_dict(arch))
        chosen = []
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(trains(name))
            if trains(name):
                chosen.append(parameter)
        optimizer = torch.optim.AdamW(chosen, lr=1e-3, weight_decay=0.0)
        before = validate(model, valid, scoring)["val_bpb"]
        model.train()
        for step in range(args.steps):
            batch = train.train(FIRST_STEP + step)
            logits = model(batch.inputs).logits
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1), ignore_index=IGNORE
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return before, validate(model, valid, scoring)["val_bpb"]

    ways: dict[str, Callable[[str], bool]] = {
        "convolution only": lambda name: ".attn.conv." in name,
        "all but it": lambda name: ".attn.conv." not in name,
        "everything": lambda name: True,
        "projections only": lambda name: ".attn.proj." in name,
        "feed-forward only": lambda name: ".ffn." in name,
        "norms only": lambda name: "norm" in name,
    }
    print(f"supernet score before -> after {args.steps} fine-tuning steps")
    full = tuned(supernet_families.BASE, ways["everything"])
    print(f"{'full attention':18} {'everything':17} {full[0]:.4f} -> {full[1]:.4f}")
    for name, arch in supernet_families.split_variants().items():
        for way, trains in ways.items():
            before, after = tuned(arch, trains)
            gap = after - full[1]
            print(f"{name:18} {way:17} {before:.4f} -> {after:.4f}  (vs full after: {gap:+.3f})")


if __name__ == "__main__":
    main()
