"""``--format onnx``: the causal LM as an ONNX graph (token ids -> logits), checked on export.

torch.onnx's dynamo exporter (``torch.export``) is used: the older TorchScript tracer bakes the
example's sequence length into some families (local attention) and exports the sparse FFN's
custom autograd functions wrongly without an error. Shape-dependent code (Linformer's and local
attention's short-sequence paths) is traced at the longest length, where it takes its general
path, and every export is run in onnxruntime on three other lengths and compared with PyTorch;
a graph that disagrees is deleted and reported, never handed out. Weights are embedded (no
external data), which limits a graph to 2 GB.

Not exportable with torch 2.13 (refused up front, with the reason its family spec gives):
Performer attention (``cummax``), Reformer LSH attention (sort with an out= argument) and Switch
mixture of experts (data-dependent token routing); recurrent memory (state across calls) and
seq2seq models.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.export.weights import initial_model
from archsearch.families import all_specs
from archsearch.families.retrieval import retrieves

EXTRA_HINT = "pip install 'archsearch[export]'"
# (kind, family) -> why it does not export: each family's spec says (``onnx_refusal``).
UNSUPPORTED = {
    (spec.kind, spec.name): spec.onnx_refusal for spec in all_specs() if spec.onnx_refusal
}
ATOL, RTOL = 1e-4, 1e-4  # float32 kernels differ in summation order between the runtimes


class LogitsOnly(nn.Module):
    """ONNX graphs return tensors: token ids [batch, seq] -> logits [batch, seq, vocab]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).logits


def check_exportable(config: ArchConfig) -> None:
    if config.task != "causal_lm":
        raise InputError(f"ONNX export covers causal_lm models, not {config.task}", key="--format")
    if config.memory != "none":
        raise InputError(
            f"ONNX export covers models without recurrent memory, not memory '{config.memory}' "
            "(its state crosses calls)",
            key="--format",
        )
    if retrieves(config):
        raise InputError(
            "ONNX export covers models without retrieval (their neighbours come from a "
            "datastore the graph does not hold)",
            key="--format",
        )
    if config.max_seq_len < 2:
        raise InputError("ONNX export needs max_seq_len >= 2", key="--format")
    for layer in config.layers:
        for kind in ("attention", "ffn"):
            reason = UNSUPPORTED.get((kind, getattr(layer, kind)))
            if reason:
                raise InputError(
                    f"{kind} '{getattr(layer, kind)}' does not export to ONNX: {reason}; "
                    "export yaml, pytorch or hf instead",
                    key="--format",
                )


def write_onnx(config: ArchConfig, prov: dict[str, Any], path: Path, seed: int) -> Path:
    """Export the model (the trial's starting weights), verify it, attach the provenance."""
    check_exportable(config)
    try:
        import onnx
        import onnxruntime  # noqa: F401  (needed by verify)
    except ImportError:
        raise InputError(f"onnx and onnxruntime are needed: {EXTRA_HINT}", key="--format") from None
    model = LogitsOnly(initial_model(config, seed)).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randint(0, config.vocab_size, (2, _lengths(config)[0]))
    seq = torch.export.Dim("seq", min=2, max=_lengths(config)[0])
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it logs the optional ops it skips (torchvision)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["input_ids"],
                output_names=["logits"],
                dynamic_shapes={"input_ids": {0: torch.export.Dim("batch"), 1: seq}},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # torch.export and the converter raise many kinds
        path.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputError(
            f"this architecture does not export to ONNX ({type(exc).__name__}: {first})",
            key="--format",
        ) from None
    finally:
        exporter_log.setLevel(level)
    ratio, error = verify(model, path, config)
    if ratio > 1.0:
        path.unlink(missing_ok=True)
        raise InputError(
            f"the ONNX graph disagrees with PyTorch (max error {error:.2e}); not exported",
            key="--format",
        )
    proto = onnx.load(str(path))
    for key, value in (("archsearch.arch", config.to_dict()), ("archsearch.provenance", prov)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))
    return path


def verify(model: nn.Module, path: Path, config: ArchConfig) -> tuple[float, float]:
    """onnxruntime against PyTorch on three lengths other than the traced one: the largest
    ``|error| / (ATOL + RTOL * |logit|)`` (<= 1 passes) and the largest absolute error."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ratio, error = 0.0, 0.0
    generator = torch.Generator().manual_seed(0)
    for batch, length in zip((1, 3, 2), _lengths(config)[1:], strict=True):
        tokens = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
        with torch.no_grad():
            expected = model(tokens)
        (got,) = session.run(["logits"], {"input_ids": tokens.numpy()})
        actual = torch.from_numpy(got)
        if actual.shape != expected.shape:
            return float("inf"), float("inf")
        difference = (actual - expected).abs()
        ratio = max(ratio, float((difference / (ATOL + RTOL * expected.abs())).max()))
        error = max(error, float(difference.max()))
    return ratio, error


def _lengths(config: ArchConfig) -> tuple[int, int, int, int]:
    """The traced length (the longest, so shape-dependent code takes its general path), then
    three others to check: a short one, one in the middle and one short of the longest."""
    longest = max(2, config.max_seq_len)
    return longest, min(longest, 5), longest // 2 + 1, max(2, longest - 1)
