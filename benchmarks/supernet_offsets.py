"""Do family offsets measured by fine-tuning correct the supernet's ranking?

Run: .venv/bin/python benchmarks/supernet_offsets.py [--workers 2]

`archsearch/supernet/offsets.py` probes each layer kind of `oneshot_lm` (a family, and LSRA per
split) on the profile's Transformer baseline with the kind in every layer, and takes off a
candidate's supernet score the mean of its layers' offsets. This benchmark prints:

1. the offsets `run` uses, and, for the settings it holds at their middle value (local window,
   LSRA kernel, experts, sparsity, ...), the offsets of every value, to show how little they
   move them;
2. Kendall tau against the 12 long-training references of
   `benchmarks/fidelity/oneshot_lm.mobile_100M.s0.jsonl`: raw scores, adjusted scores, and
   brief training's tau from the same journal;
3. the three models the default run's 8x confirm trained (`benchmarks/confirm/default_run.db`):
   the order raw and adjusted scores give them beside their 8x order.

The references were not used to choose the offsets: they come from the probes alone. The
supernet is the cached one of `supernet_brief` (trained on first use); the probes' fine-tunes
are cached beside it, the every-value probes are not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

REFERENCES = ROOT / "benchmarks" / "fidelity" / "oneshot_lm.mobile_100M.s0.jsonl"
CONFIRM = ROOT / "benchmarks" / "confirm" / "default_run.db"
CONFIRM_STUDY = "oneshot_lm.mobile_100M.supernet_brief.trained"


def every_value_offsets(
    space: Any, path: Path, recipe: Any, reference: Any, workers: int
) -> dict[str, float]:
    """The offset of every value of each held-at-middle setting, one setting at a time."""
    from dataclasses import replace

    from archsearch.supernet.offsets import _scored, layer_kinds, probe

    probes = {"reference": reference}
    for kind in layer_kinds(space):
        for name, middle in kind.others:
            param = space.params[name]
            values = param.choices if param.kind == "choice" else []
            for value in values:
                if value == middle:
                    continue
                others = tuple((n, value if n == name else v) for n, v in kind.others)
                variant = replace(kind, others=others)
                probes[f"{kind.label} {name}={value}"] = probe(reference, variant)
    scores = dict(_scored(path, probes, recipe, workers))
    base = scores["reference"]["raw"] - scores["reference"]["finetuned"]
    return {
        label: s["raw"] - s["finetuned"] - base
        for label, s in scores.items()
        if label != "reference"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-values", action="store_true", help="leave out part 1's sweep")
    args = parser.parse_args()

    import fidelity_references
    import optuna
    import torch

    from archsearch import ArchConfig
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import Journal, correlation, job_key
    from archsearch.profiles import load_profile
    from archsearch.search.baselines import design_baselines
    from archsearch.space import load_space
    from archsearch.supernet.offsets import measure_offsets
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, recipe = load_space("oneshot_lm"), load_recipe("supernet_brief")
    profile = load_profile("mobile_100M")
    path = ensure_supernet(space, recipe, threads=args.workers, log=print)
    reference = space.to_config(design_baselines(space, profile)[0].values)
    offsets = measure_offsets(space, path, recipe, reference, workers=args.workers)
    print("1. offsets run takes off, per layer of the kind (bpb):")
    for label, value in sorted(offsets.offsets.items(), key=lambda item: item[1]):
        print(f"   {value:+.3f}  {label}")
    if not args.skip_values:
        print("   other values of the settings held at their middle:")
        for label, value in every_value_offsets(
            space, path, recipe, reference, args.workers
        ).items():
            print(f"   {value:+.3f}  {label}")

    candidates, _, jobs = fidelity_references.kept_plan()
    brief_recipe = load_recipe("lm_brief").training
    done = Journal(REFERENCES).read()
    rows = []
    for candidate in candidates:
        refs = fidelity_references.references_of(candidate, jobs, done)
        brief = done.get(job_key("short", candidate.arch, brief_recipe, ()), {}).get("val_bpb")
        if not refs or brief is None:
            continue
        raw = score_from_file(path, candidate.config, recipe)
        rows.append((sum(refs) / len(refs), raw, raw - offsets.of(candidate.config), brief))
    truth = [row[0] for row in rows]
    print(f"\n2. Kendall tau against the {len(rows)} long-training references:")
    for column, name in ((1, "supernet raw"), (2, "supernet less offsets"), (3, "brief training")):
        found = correlation([row[column] for row in rows], truth)
        low, high = found["kendall_tau_interval"]
        print(f"   {name:<22} {found['kendall_tau']:6.3f} [{low:6.3f}, {high:6.3f}]")

    storage = f"sqlite:///{CONFIRM}"
    trained = optuna.load_study(study_name=CONFIRM_STUDY, storage=storage)
    confirm = optuna.load_study(study_name=CONFIRM_STUDY + ".confirm", storage=storage)
    print("\n3. the default run's confirmed models (8x mean over seeds; lower is better):")
    for trial in trained.trials:
        runs = [
            t.values[0]
            for t in confirm.trials
            if t.values
            and t.user_attrs.get("source_trial") == trial.number
            and t.user_attrs.get("factor") == 8.0
        ]
        if not runs:
            continue
        config = ArchConfig.from_dict(trial.user_attrs["arch"])
        raw = score_from_file(path, config, recipe)
        name = trial.user_attrs.get("baseline") or f"trial {trial.number}"
        print(
            f"   {name:<17} 8x {sum(runs) / len(runs):.3f} ({len(runs)} seeds)   "
            f"raw {raw:.3f}   less offsets {raw - offsets.of(config):.3f}"
        )


if __name__ == "__main__":
    main()
