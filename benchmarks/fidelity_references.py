"""Long-training references for `archsearch fidelity`, trained on a GPU (or here), written as
lines of its journal so that `archsearch fidelity --save JOURNAL` reads them back instead of
training them again.

Why: a fidelity measurement is dominated by its references (12 configurations x 2 seeds x 8
times the brief budget: about 2.5 hours on this 2-core machine). On a GPU the same runs take
minutes. The configurations are the ones `archsearch fidelity` samples (same function, same
seed); each job's key is the one fidelity computes, so the journal is shared.

The data must be the same bytes as here: `python_stdlib` is the running Python's own
standard library, which differs between machines. So this runs in two steps:

    # here: the exact training and validation streams the references read
    python benchmarks/fidelity_references.py export --streams .refdata/streams.pt ...
    # on the GPU machine: train, append to the journal
    python benchmarks/fidelity_references.py train --streams .refdata/streams.pt ...
    # here: the brief runs and proxies (fidelity's own jobs), then the correlations so far
    python benchmarks/fidelity_references.py brief ...
    python benchmarks/fidelity_references.py report ...

Both take --space, --profile, --evaluator, --configs, --factor, --seed, --reference-seeds and
--journal, with fidelity's meanings. Each journal line records the device and torch version
it was trained with.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plan(args: argparse.Namespace) -> tuple[list[Any], Any, list[tuple[str, dict, Any]]]:
    """Fidelity's own sampling and job keys for the long runs: (candidates, recipe, jobs)."""
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import job_key, sample_region
    from archsearch.profiles import load_profile
    from archsearch.space import load_space

    space, profile = load_space(args.space), load_profile(args.profile)
    recipe = load_recipe(args.evaluator).training
    long_recipe = recipe.replace(token_budget=args.factor * recipe.token_budget)
    candidates = sample_region(space, profile, recipe, args.configs, seed=args.seed)
    jobs = []
    for replica in range(args.reference_seeds):
        seeded = long_recipe.replace(seed=recipe.seed + replica)
        for candidate in candidates:
            jobs.append((job_key("long", candidate.arch, seeded, []), candidate.arch, seeded))
    return candidates, long_recipe, jobs


def kept_plan() -> tuple[list[Any], Any, list[tuple[str, dict, Any]]]:
    """``plan`` of the journal kept in the repository (this script's defaults)."""
    args = argparse.Namespace(
        space="oneshot_lm",
        profile="mobile_100M",
        evaluator="lm_brief",
        configs=12,
        factor=8,
        seed=0,
        reference_seeds=2,
    )
    return plan(args)


def references_of(candidate: Any, jobs: list[tuple[str, dict, Any]], done: dict) -> list[float]:
    """The finished long runs' bpb of ``candidate``, in seed order (``plan``'s jobs)."""
    return [
        done[key]["val_bpb"]
        for key, arch, _ in jobs
        if arch == candidate.arch and key in done and "val_bpb" in done[key]
    ]


def export(args: argparse.Namespace) -> None:
    """Save the training and validation streams the long runs read (and nothing more)."""
    import torch

    from archsearch.evaluate.data import make_batches

    _, long_recipe, _ = plan(args)
    batches = make_batches(long_recipe)
    seq = long_recipe.seq_len
    train = batches.train_streams[:, : long_recipe.steps * seq + 1].contiguous()
    valid = batches._valid[:, : long_recipe.eval_batches * seq + 1].contiguous()
    Path(args.streams).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"train": train, "valid": valid, "fingerprint": batches.fingerprint}, args.streams)
    print(f"saved {train.numel() + valid.numel():,} bytes of streams to {args.streams}")


class DeviceBatches:
    """The saved streams as fidelity's batches, moved to ``device`` as they are read."""

    answers_only = False

    def __init__(self, saved: dict[str, Any], seq_len: int, device: str):
        from archsearch.evaluate.data import StreamBatches

        rows = saved["train"].shape[0]
        self.inner = StreamBatches(
            saved["train"].reshape(-1),
            saved["valid"].reshape(-1),
            rows=rows,
            seq_len=seq_len,
            fingerprint=saved["fingerprint"],
        )
        self.fingerprint, self.description, self.device = saved["fingerprint"], "", device

    def _moved(self, batch: Any) -> Any:
        import dataclasses

        return dataclasses.replace(
            batch, inputs=batch.inputs.to(self.device), targets=batch.targets.to(self.device)
        )

    def train(self, step: int) -> Any:
        return self._moved(self.inner.train(step))

    def valid(self, index: int) -> Any:
        return self._moved(self.inner.valid(index))


def train_one(
    job: tuple[str, dict, Any], streams: str, device: str, threads: int
) -> tuple[str, dict]:
    """One long run, as fidelity's ``run_job`` would record it."""
    import torch

    torch.set_num_threads(threads)
    from archsearch.config import ArchConfig
    from archsearch.evaluate.train import fit
    from archsearch.models import build_model

    key, arch, recipe = job
    saved = torch.load(streams, weights_only=True)
    batches = DeviceBatches(saved, recipe.seq_len, device)
    wall, cpu = time.perf_counter(), time.process_time()
    model = build_model(ArchConfig.from_dict(arch), seed=recipe.seed)  # as on the CPU
    model.to(device)
    try:
        curve = fit(model, recipe, batches=batches)
        outcome: dict[str, Any] = {
            "val_bpb": curve[-1]["val_bpb"],
            "curve": [{"tokens": p["tokens"], "val_bpb": p["val_bpb"]} for p in curve],
        }
    except Exception as exc:  # recorded like fidelity's failed jobs
        outcome = {"failed": f"{type(exc).__name__}: {exc}"}
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    outcome.update(
        wall_s=time.perf_counter() - wall,
        cpu_s=time.process_time() - cpu,
        device=name,
        torch=torch.__version__,
    )
    return key, outcome


def train(args: argparse.Namespace) -> None:
    from archsearch.fidelity import Journal

    _, _, jobs = plan(args)
    journal = Journal(Path(args.journal))
    done = journal.read()
    todo = [job for job in jobs if job[0] not in done]
    if args.reverse:  # a second process over the same journal starts from the other end
        todo.reverse()
    print(f"{len(jobs)} long runs, {len(jobs) - len(todo)} in the journal, {len(todo)} to train")
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with context.Pool(args.procs) as pool:
        work = [(job, args.streams, args.device, args.threads) for job in todo]
        for finished, (key, outcome) in enumerate(pool.imap_unordered(_star, work), 1):
            journal.append(key, outcome)
            shown = outcome.get("val_bpb", outcome.get("failed"))
            print(
                f"[{finished}/{len(todo)}] {shown} in {outcome['wall_s']:.0f} s "
                f"({time.perf_counter() - started:.0f} s so far)",
                flush=True,
            )


def brief(args: argparse.Namespace) -> None:
    """The brief runs and proxies of the same configurations (fidelity's short and proxies
    jobs, with its keys), here, one process: what `fidelity` would train besides references."""
    from archsearch.evaluate.proxies import PROXIES
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import Journal, job_key, run_job

    candidates, _, _ = plan(args)
    recipe = load_recipe(args.evaluator).training
    journal = Journal(Path(args.journal))
    for kind, proxies in (("proxies", list(PROXIES)), ("short", [])):
        for index, candidate in enumerate(candidates, 1):
            key = job_key(kind, candidate.arch, recipe, proxies)
            if key in journal.read():
                continue
            outcome = run_job(kind, candidate.arch, recipe, proxies)
            journal.append(key, outcome)
            print(f"{kind} #{index}: {outcome.get('val_bpb', outcome.get('proxies'))}", flush=True)


def report(args: argparse.Namespace) -> None:
    """Kendall tau against the references that exist so far: the supernet's inherited-weights
    score, brief training and the synflow blend (`archsearch fidelity --evaluator
    supernet_brief` gives the same once every reference is in the journal)."""
    from archsearch.evaluate.proxies import PROXIES
    from archsearch.evaluate.recipe import load_recipe
    from archsearch.fidelity import Journal, correlation, job_key
    from archsearch.space import load_space
    from archsearch.supernet.scoring import score_from_file
    from archsearch.supernet.store import ensure_supernet

    candidates, _, jobs = plan(args)
    recipe = load_recipe(args.evaluator).training
    done = Journal(Path(args.journal)).read()
    supernet_recipe = load_recipe("supernet_brief")
    path = ensure_supernet(load_space(args.space), supernet_recipe, threads=2, log=print)
    blend = load_recipe("lm_brief_synflow").blend
    rows = []
    for candidate in candidates:
        refs = references_of(candidate, jobs, done)
        short = done.get(job_key("short", candidate.arch, recipe, []), {}).get("val_bpb")
        proxies = done.get(job_key("proxies", candidate.arch, recipe, list(PROXIES)), {})
        synflow = proxies.get("proxies", {}).get("synflow")
        score = score_from_file(path, candidate.config, supernet_recipe)
        rows.append((candidate, refs, short, synflow, score))
        print(
            f"{candidate.macs / 1e6:6.1f}M  ref {refs}  brief {short}  synflow {synflow}  "
            f"supernet {score:.4f}  {candidate.family}"
        )
    for need_refs in (True, False):
        usable = [r for r in rows if r[2] is not None and r[3] is not None]
        if need_refs:
            usable = [r for r in usable if r[1]]
            target = [sum(r[1]) / len(r[1]) for r in usable]
            print(f"\nagainst the references ({len(usable)} configurations with one):")
        else:
            target = [r[2] for r in usable]
            print(f"\nagainst brief training ({len(usable)} configurations):")
        if len(usable) < 3:
            print("  too few")
            continue
        columns = {
            "supernet": [r[4] for r in usable],
            "brief_training": [r[2] for r in usable],
            "synflow_blend": [blend.score(r[2], r[3]) for r in usable],
        }
        for name, values in columns.items():
            found = correlation(values, target)
            low, high = found["kendall_tau_interval"]
            print(f"  {name:<15} Kendall tau {found['kendall_tau']:6.3f} [{low:6.3f}, {high:6.3f}]")


def _star(item: tuple) -> tuple[str, dict]:
    return train_one(*item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("export", "train", "brief", "report"))
    parser.add_argument("--space", default="oneshot_lm")
    parser.add_argument("--profile", default="mobile_100M")
    parser.add_argument("--evaluator", default="lm_brief")
    parser.add_argument("--configs", type=int, default=12)
    parser.add_argument("--factor", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-seeds", type=int, default=2)
    parser.add_argument("--journal", default="benchmarks/fidelity/oneshot_lm.mobile_100M.s0.jsonl")
    parser.add_argument("--streams", default=".refdata/streams.pt")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--procs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.add_argument("--reverse", action="store_true", help="train the last jobs first")
    args = parser.parse_args()
    {"export": export, "train": train, "brief": brief, "report": report}[args.step](args)


if __name__ == "__main__":
    main()
