"""``archsearch compress``: the float model and its compressed copy, measured side by side.

The float model is the trial's: built with the recipe's seed, then given the weights ``train``
saved (``--weights``) or, without them, trained with the recipe exactly as the search's
evaluator trained it. The compressed copy is pruned (then fine-tuned with the same loop) and/or
quantized to int8. Both are saved in the same safetensors layout (``store``), rebuilt from the
file and checked to give the saved model's outputs, then measured the same way:

- ``file_bytes``: the safetensors file on disk (header included);
- ``nonzero_params``: parameters that are not zero (int8 weights included; shared ones once);
- ``latency``: ``archsearch measure``'s forward timing (same protocol and clocks) of the
  profile's workload, on this machine, under whatever load it has;
- ``val_bpb``: the evaluator's validation (``evaluate.train.validate``) on the recipe's data.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archsearch.compress.prune import Pruning, finetune, nonzero_parameters, prune
from archsearch.compress.quantize import quantize_int8
from archsearch.compress.store import load_compressed, save_compressed
from archsearch.config import ArchConfig
from archsearch.errors import InputError, RunAborted
from archsearch.evaluate.recipe import Recipe
from archsearch.families.retrieval import retrieved_chunks, retrieves
from archsearch.profiles import Profile
from archsearch.seeding import seeded

Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """What to do to the float model."""

    int8: bool = False
    pruning: Pruning | None = None
    finetune_tokens: int = 0  # recovery fine-tune after pruning (0: none)
    finetune_lr: float | None = None  # its peak learning rate (None: where training ended)

    @property
    def name(self) -> str:
        parts = []
        if self.pruning is not None:
            parts.append(f"{self.pruning.method}{round(self.pruning.sparsity * 100)}")
        if self.int8:
            parts.append("int8")
        return "+".join(parts) or "float"

    def to_dict(self) -> dict[str, Any]:
        return {
            "int8": self.int8,
            "prune": None if self.pruning is None else self.pruning.method,
            "sparsity": None if self.pruning is None else self.pruning.sparsity,
            "finetune_tokens": self.finetune_tokens if self.pruning is not None else 0,
            "finetune_lr": self.finetune_lr,
        }


@dataclass
class Measured:
    """One model's figures (see the module docstring)."""

    name: str
    path: Path
    file_bytes: int
    nonzero_params: int
    latency_ms: float
    latency_clock: str
    latency_iqr_ms: float
    val_bpb: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "file_bytes": self.file_bytes,
            "nonzero_params": self.nonzero_params,
            "latency_ms": self.latency_ms,
            "latency_clock": self.latency_clock,
            "latency_iqr_ms": self.latency_iqr_ms,
            "val_bpb": self.val_bpb,
            **self.extra,
        }


def load_weights(model: nn.Module, path: Path) -> None:
    """Weights from ``train``'s checkpoint (``checkpoint.pt`` or its folder, read with
    weights_only=True), a float file ``compress`` wrote, or a safetensors state dict (a tied
    weight may be left out)."""
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"no file at {path}", key="--weights")
    if path.suffix == ".safetensors":
        state = _safetensors_state(path)
    else:
        from archsearch.evaluate.checkpoint import load_checkpoint

        try:
            state = load_checkpoint(path)["model"]
        except InputError:
            raise InputError(
                f"{path} is neither a train checkpoint nor a .safetensors file", key="--weights"
            ) from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    storage = {k: v.untyped_storage().data_ptr() for k, v in model.state_dict().items()}
    loaded = {storage[k] for k in state if k in storage}
    missing = [k for k in missing if storage[k] not in loaded]  # tied to a loaded tensor: fine
    if missing or unexpected:
        wrong = (missing or unexpected)[0]
        what = "lacks" if missing else "has an unknown"
        raise InputError(
            f"{path} does not fit this architecture: it {what} tensor {wrong}", key="--weights"
        )


def _safetensors_state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    from archsearch.compress.store import FORMAT, load_compressed

    try:
        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get("format") != FORMAT:
                return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors' own errors for a broken file
        raise InputError(f"cannot read {path}: {exc}", key="--weights") from None
    rebuilt, _, info = load_compressed(path)
    if info.get("int8"):
        raise InputError(f"{path} is already int8: give float weights", key="--weights")
    return rebuilt.state_dict()


def float_model(
    config: ArchConfig, recipe: Recipe, weights: Path | None, say: Say
) -> tuple[nn.Module, str]:
    """The trial's float model and where its weights came from."""
    from archsearch.evaluate.train import check_compatible, fit
    from archsearch.models import build_model

    check_compatible(config, recipe)
    if weights is not None:
        model = build_model(config, seed=recipe.seed)
        load_weights(model, weights)
        return model.eval(), f"weights from {weights}"
    say(
        f"no --weights: training the float model as the evaluator did ({recipe.name}, "
        f"{recipe.token_budget:,} tokens)"
    )
    with seeded(recipe.seed):  # as evaluate(): seed, build, train on one stream
        model = build_model(config)
        fit(model, recipe)
    return model.eval(), f"trained here with {recipe.name} ({recipe.token_budget:,} tokens)"


def measure(
    name: str,
    model: nn.Module,
    config: ArchConfig,
    path: Path,
    recipe: Recipe,
    profile: Profile,
) -> Measured:
    from archsearch.evaluate.data import make_batches
    from archsearch.evaluate.train import datastore_for_model, validate
    from archsearch.measure import MeasureOptions, forward_timings

    workload = profile.workload
    tokens = workload.tokens_for(profile.convention)
    timings = forward_timings(
        config,
        tokens,
        workload.batch_size,
        workload.threads,
        MeasureOptions().timing,
        model=model,
    )
    clock = "cpu" if "cpu" in timings else "wall"
    batches = make_batches(recipe)
    bpb = validate(model, batches, recipe, datastore_for_model(model, batches))["val_bpb"]
    return Measured(
        name=name,
        path=path,
        file_bytes=path.stat().st_size,
        nonzero_params=nonzero_parameters(model),
        latency_ms=timings[clock]["median_ms"],
        latency_clock=clock,
        latency_iqr_ms=timings[clock]["iqr_ms"],
        val_bpb=bpb,
    )


def check_rebuilt(model: nn.Module, path: Path, config: ArchConfig) -> None:
    """The model rebuilt from ``path`` must give ``model``'s logits exactly."""
    rebuilt, _, _ = load_compressed(path)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(
        0, config.vocab_size, (2, min(16, config.max_seq_len)), generator=generator
    )
    args = (tokens, tokens.flip(1)) if config.task == "seq2seq" else (tokens,)
    kwargs = {}
    if retrieves(config):  # any neighbours will do: the two models must read them alike
        chunks = retrieved_chunks(config, tokens.shape[1])
        shape = (2, chunks, config.retrieval_k, 2 * config.retrieval_chunk)
        kwargs["neighbours"] = torch.randint(0, config.vocab_size, shape, generator=generator)
    with torch.no_grad():
        if not torch.equal(model(*args, **kwargs).logits, rebuilt(*args, **kwargs).logits):
            raise RunAborted(f"the model rebuilt from {path} differs from the one saved")


def compress(
    config: ArchConfig,
    recipe: Recipe,
    profile: Profile,
    plan: Plan,
    out: Path,
    stem: str,
    *,
    weights: Path | None = None,
    onnx: bool = False,
    say: Say = print,
) -> dict[str, Any]:
    """Build (or train) the float model, compress it per ``plan``, save, rebuild, measure."""
    if not plan.int8 and plan.pruning is None:
        raise InputError("nothing to do: give --int8, --prune METHOD, or both", key="--int8")
    started = time.perf_counter()
    model, origin = float_model(config, recipe, weights, say)
    float_path = save_compressed(
        model, config, out / f"{stem}.float.safetensors", info={"origin": origin}
    )
    check_rebuilt(model, float_path, config)
    compressed = copy.deepcopy(model)
    pruned: list[str] = []
    finetuned = None
    if plan.pruning is not None:
        masks = prune(compressed, plan.pruning)
        pruned = list(masks)
        if plan.finetune_tokens:
            say(f"pruned ({plan.pruning.method}, {plan.pruning.sparsity:.0%}); recovery fine-tune")
            curve = finetune(compressed, masks, recipe, plan.finetune_tokens, plan.finetune_lr)
            finetuned = curve[-1]["tokens"] if curve else 0
    float_pruned = compressed
    if plan.int8:
        compressed = quantize_int8(compressed)
    info = {**plan.to_dict(), "origin": origin, "finetuned_tokens": finetuned}
    path = save_compressed(
        compressed, config, out / f"{stem}.{plan.name}.safetensors", pruned=pruned, info=info
    )
    check_rebuilt(compressed, path, config)
    say("measuring both (latency on this machine, under its current load)")
    rows = [
        measure("float", model, config, float_path, recipe, profile),
        measure(plan.name, compressed, config, path, recipe, profile),
    ]
    rows[1].extra["finetuned_tokens"] = finetuned
    files = [float_path, path]
    if onnx:
        from archsearch.compress.onnx_int8 import write_int8_onnx
        from archsearch.export.onnx_model import export_graph

        float_onnx = export_graph(model, config, out / f"{stem}.float.onnx")
        files.append(float_onnx)
        if plan.int8:
            source = float_onnx
            if pruned:
                source = export_graph(float_pruned, config, out / f"{stem}.pruned.onnx")
                files.append(source)
            int8_path = out / f"{stem}.{plan.name}.onnx"
            files.append(write_int8_onnx(source, int8_path, float_pruned))
    return {
        "config": config.to_dict(),
        "recipe": recipe.name,
        "profile": profile.name,
        "workload": profile.workload.to_dict(profile.convention),
        "plan": plan.to_dict(),
        "origin": origin,
        "models": [row.to_dict() for row in rows],
        "files": [str(f) for f in files],
        "wall_s": time.perf_counter() - started,
    }
