"""``--format onnx``: every model as an ONNX graph, checked against PyTorch on export.

The graph's inputs and outputs by task:

- causal LM: ``input_ids`` [batch, seq] -> ``logits`` [batch, seq, vocab];
- seq2seq: ``input_ids`` (decoder, teacher-forced) and ``source_ids`` -> ``logits``; one graph
  runs the encoder and the decoder;
- recurrent memory (Transformer-XL, compressive, infinity-former): ``input_ids`` plus the
  memory state as explicit inputs ``state.<layer>[.compressed|.coefficients|.memory]`` ->
  ``logits`` and the next state under the same names with a ``next_`` prefix. The graph is
  the steady-state step: its state inputs have the shapes a stream reaches once the memory is
  full (the first segments of a stream, while the memory fills, run in PyTorch or pass through
  ``warm_state``);
- retrieval (RETRO): ``input_ids`` [batch, max_seq_len] and ``neighbours`` [batch, chunks, k,
  2 * retrieval_chunk] (token ids, as ``archsearch.evaluate.retrieval`` looks them up) ->
  ``logits``: the model given its neighbours; the datastore and its nearest-neighbour search
  stay outside the graph. With recurrent memory too, ``neighbours`` follows the state inputs.

torch.onnx's dynamo exporter (``torch.export``) is used: the older TorchScript tracer bakes the
example's sequence length into some families (local attention) and exports the sparse FFN's
custom autograd functions wrongly without an error. Families whose forward has Python that
ONNX cannot express take a traced form while ``torch.compiler.is_exporting()`` (Performer: a
masked max instead of cummax, one fixed chunk; LSH: top-k instead of a stable sort; switch MoE:
every expert on every token, masked to the routed one). Shape-dependent code is traced at the
longest length, where it takes its general path, and every graph is run in onnxruntime on other
lengths and batch sizes and compared with PyTorch; a graph that disagrees is deleted and
reported, never handed out. Graphs whose family spec names ``onnx_fixed_length`` (LSH) and
models with recurrent memory or retrieval take exactly ``max_seq_len`` tokens per call. Weights
are embedded (no external data), which limits a graph to 2 GB.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.export.weights import initial_model
from archsearch.families import all_specs
from archsearch.families.retrieval import retrieved_chunks, retrieves

EXTRA_HINT = "pip install 'archsearch[export]'"
# (kind, family) -> why it does not export: each family's spec says (``onnx_refusal``).
UNSUPPORTED = {
    (spec.kind, spec.name): spec.onnx_refusal for spec in all_specs() if spec.onnx_refusal
}
FIXED_LENGTH = {
    (spec.kind, spec.name): spec.onnx_fixed_length for spec in all_specs() if spec.onnx_fixed_length
}
ATOL, RTOL = 1e-4, 1e-4  # float32 kernels differ in summation order between the runtimes
WARM_SEGMENTS = 64  # segments a memory model may take to reach its steady-state shapes


class LogitsOnly(nn.Module):
    """ONNX graphs return tensors: token ids [batch, seq] -> logits [batch, seq, vocab]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids).logits


class Seq2SeqLogits(nn.Module):
    """Decoder ids and source ids -> logits: the encoder and the decoder in one graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, source_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, source_ids).logits


class RetrievalLogits(nn.Module):
    """Token ids and their retrieved neighbours' ids -> logits: the model given its neighbours
    (the datastore lookup that finds them stays outside the graph)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, neighbours=neighbours).logits


class MemoryStep(nn.Module):
    """One segment with the recurrent state as a flat list of tensors in and out."""

    def __init__(self, model: nn.Module, per_layer: int):
        super().__init__()
        self.model = model
        self.per_layer = per_layer  # tensors per layer: 1 (XL) or 2 (compressive, infinity)

    def forward(
        self,
        input_ids: torch.Tensor,
        state: list[torch.Tensor],
        neighbours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        nested = nest_state(state, self.per_layer)
        if neighbours is None:
            out = self.model(input_ids, state=nested)
        else:
            out = self.model(input_ids, state=nested, neighbours=neighbours)
        return (out.logits, *flat_state(out.state))


def flat_state(state: Any) -> list[torch.Tensor]:
    """A model's state (a tuple per layer of a tensor or a pair) as one flat list."""
    flat: list[torch.Tensor] = []
    for layer in state:
        flat.extend(layer if isinstance(layer, tuple) else (layer,))
    return flat


def nest_state(flat: list[torch.Tensor], per_layer: int) -> tuple[Any, ...]:
    if per_layer == 1:
        return tuple(flat)
    return tuple(tuple(flat[i : i + per_layer]) for i in range(0, len(flat), per_layer))


# The tensors of one layer's state, in the order the memory module keeps them (XL: one).
STATE_PARTS = {"compressive": ("compressed", "memory"), "infinity": ("coefficients", "memory")}


def state_parts(config: ArchConfig) -> tuple[str, ...]:
    return STATE_PARTS.get(config.memory, ("",))


def state_names(config: ArchConfig) -> list[str]:
    """Graph input names of the state, layer by layer (outputs add the ``next_`` prefix)."""
    parts = state_parts(config)
    return [f"state.{i}{'.' + p if p else ''}" for i in range(config.n_layers) for p in parts]


def warm_state(model: nn.Module, config: ArchConfig, batch: int, seed: int = 0) -> Any:
    """The state after enough random segments of ``max_seq_len`` tokens (with random
    neighbours, when the model retrieves) that its shapes stop changing: what the memory graph's
    state inputs look like."""
    generator = torch.Generator().manual_seed(seed)
    state: Any = None
    shapes: list[tuple[int, ...]] = []
    with torch.no_grad():
        for _ in range(WARM_SEGMENTS):
            tokens = torch.randint(
                0, config.vocab_size, (batch, config.max_seq_len), generator=generator
            )
            extra = {}
            if retrieves(config):
                extra["neighbours"] = random_neighbours(config, batch, generator)
            state = model(tokens, state=state, **extra).state
            now = [tuple(t.shape) for t in flat_state(state)]
            if now == shapes:
                return state
            shapes = now
    raise RuntimeError(f"the memory state did not settle in {WARM_SEGMENTS} segments")


def fixed_length_reason(config: ArchConfig) -> str | None:
    """Why this model's graph takes exactly ``max_seq_len`` tokens; None: any length."""
    if config.memory != "none":
        return f"memory '{config.memory}' keeps a state whose shapes follow the segment length"
    if retrieves(config):
        return "retrieval: the neighbours' chunk count follows the sequence length"
    for layer in (*config.layers, *config.encoder_layers):
        for kind in ("attention", "ffn"):
            reason = FIXED_LENGTH.get((kind, getattr(layer, kind)))
            if reason:
                return f"{kind} '{getattr(layer, kind)}': {reason}"
    return None


def random_neighbours(config: ArchConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Neighbour ids [batch, chunks, k, 2m] for ``max_seq_len`` tokens (graph examples, checks)."""
    chunks = retrieved_chunks(config, config.max_seq_len)
    shape = (batch, chunks, config.retrieval_k, 2 * config.retrieval_chunk)
    return torch.randint(0, config.vocab_size, shape, generator=generator)


def check_exportable(config: ArchConfig) -> None:
    if config.max_seq_len < 2:
        raise InputError("ONNX export needs max_seq_len >= 2", key="--format")
    for layer in (*config.layers, *config.encoder_layers):
        for kind in ("attention", "ffn"):
            reason = UNSUPPORTED.get((kind, getattr(layer, kind)))
            if reason:
                raise InputError(
                    f"{kind} '{getattr(layer, kind)}' does not export to ONNX: {reason}; "
                    "export yaml, pytorch or hf instead",
                    key="--format",
                )


@dataclass
class Graph:
    """What to trace and how to check it: a wrapper module, its example inputs and the input
    sets onnxruntime must agree on (each a list of calls; a memory call feeds the next)."""

    module: nn.Module
    example: tuple[Any, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_shapes: dict[str, Any]
    checks: list[list[dict[str, torch.Tensor]]] = field(default_factory=list)


def graph_for(model: nn.Module, config: ArchConfig) -> Graph:
    """The wrapper, names, dynamic axes and check inputs for ``model`` (built from ``config``)."""
    fixed = fixed_length_reason(config) is not None
    longest = max(2, config.max_seq_len)
    batch = torch.export.Dim("batch")
    seq: Any = longest if fixed else torch.export.Dim("seq", min=2, max=longest)
    generator = torch.Generator().manual_seed(0)

    def ids(b: int, t: int) -> torch.Tensor:
        return torch.randint(0, config.vocab_size, (b, t), generator=generator)

    runs = (
        [(1, longest), (3, longest)]
        if fixed
        else list(zip((1, 3, 2), _lengths(config)[1:], strict=True))
    )
    if config.task == "seq2seq":
        source = torch.export.Dim("source", min=2, max=longest)
        checks = [
            [{"input_ids": ids(b, t), "source_ids": ids(b, max(2, longest + 2 - t))}]
            for b, t in runs
        ]
        return Graph(
            Seq2SeqLogits(model),
            (ids(2, longest), ids(2, longest)),
            ["input_ids", "source_ids"],
            ["logits"],
            {"input_ids": {0: batch, 1: seq}, "source_ids": {0: batch, 1: source}},
            checks,
        )
    retrieval = retrieves(config)

    def near(b: int) -> torch.Tensor:
        return random_neighbours(config, b, generator)

    if retrieval and config.memory == "none":
        return Graph(
            RetrievalLogits(model),
            (ids(2, longest), near(2)),
            ["input_ids", "neighbours"],
            ["logits"],
            {"input_ids": {0: batch}, "neighbours": {0: batch}},
            [[{"input_ids": ids(b, longest), "neighbours": near(b)}] for b, _ in runs],
        )
    if config.memory != "none":
        per_layer = len(state_parts(config))
        names = state_names(config)
        example = flat_state(warm_state(model, config, 2))
        checks = []
        for number, (b, _) in enumerate(runs):
            state = flat_state(warm_state(model, config, b, seed=1 + number))
            calls = [{"input_ids": ids(b, longest)} for _ in range(2)]  # chained segments
            calls[0].update(zip(names, state, strict=True))
            for call in calls if retrieval else ():
                call["neighbours"] = near(b)
            checks.append(calls)
        shapes: dict[str, Any] = {"input_ids": {0: batch}, "state": [{0: batch} for _ in names]}
        if retrieval:  # the neighbours come last, after the state
            shapes["neighbours"] = {0: batch}
        return Graph(
            MemoryStep(model, per_layer),
            (ids(2, longest), example, *((near(2),) if retrieval else ())),
            ["input_ids", *names, *(["neighbours"] if retrieval else [])],
            ["logits", *(f"next_{name}" for name in names)],
            shapes,
            checks,
        )
    return Graph(
        LogitsOnly(model),
        (ids(2, longest),),
        ["input_ids"],
        ["logits"],
        {"input_ids": {0: batch, 1: seq}},
        [[{"input_ids": ids(b, t)}] for b, t in runs],
    )


def export_graph(model: nn.Module, config: ArchConfig, path: Path) -> Path:
    """Trace ``model`` (eval mode) to ``path`` and check it in onnxruntime; delete and raise
    InputError when it cannot be traced or disagrees with PyTorch."""
    check_exportable(config)
    try:
        import onnxruntime  # noqa: F401  (needed by verify)
    except ImportError:
        raise InputError(f"onnx and onnxruntime are needed: {EXTRA_HINT}", key="--format") from None
    graph = graph_for(model.eval(), config)
    path.parent.mkdir(parents=True, exist_ok=True)
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it logs the optional ops it skips (torchvision)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.module,
                graph.example,
                str(path),
                input_names=graph.input_names,
                output_names=graph.output_names,
                dynamic_shapes=graph.dynamic_shapes,
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
    ratio, error = verify(graph, path)
    if ratio > 1.0:
        path.unlink(missing_ok=True)
        raise InputError(
            f"the ONNX graph disagrees with PyTorch (max error {error:.2e}); not exported",
            key="--format",
        )
    return path


def write_onnx(config: ArchConfig, prov: dict[str, Any], path: Path, seed: int) -> Path:
    """Export the model (the trial's starting weights), verify it, attach the provenance."""
    try:
        import onnx  # noqa: F401  (attach_metadata)
    except ImportError:
        raise InputError(f"onnx and onnxruntime are needed: {EXTRA_HINT}", key="--format") from None
    check_exportable(config)
    export_graph(initial_model(config, seed), config, path)
    attach_metadata(path, config, prov)
    return path


def attach_metadata(path: Path, config: ArchConfig, prov: dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in (("archsearch.arch", config.to_dict()), ("archsearch.provenance", prov)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.save(proto, str(path))


def run_pairs(graph: Graph, path: Path) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(PyTorch, onnxruntime) output pairs over the graph's checks; a memory call's next state
    feeds the next call on each side separately."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state_inputs = [name for name in graph.input_names if name.startswith("state.")]
    for calls in graph.checks:
        ours: list[torch.Tensor] = []
        theirs: list[Any] = []
        for number, call in enumerate(calls):
            feed = dict(call)
            torch_feed = dict(call)
            if number and state_inputs:
                feed.update(zip(state_inputs, theirs[1:], strict=True))
                torch_feed.update(zip(state_inputs, ours[1:], strict=True))
            with torch.no_grad():
                ours = _torch_outputs(graph, torch_feed)
            theirs = session.run(graph.output_names, {k: v.numpy() for k, v in feed.items()})
            theirs = [torch.from_numpy(t) for t in theirs]
            yield from zip(ours, theirs, strict=True)


def _torch_outputs(graph: Graph, feed: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(graph.module, MemoryStep):
        state = [feed[name] for name in graph.input_names if name.startswith("state.")]
        return list(graph.module(feed["input_ids"], state, feed.get("neighbours")))
    out = graph.module(*(feed[name] for name in graph.input_names))
    return [out]


def verify(graph: Graph, path: Path) -> tuple[float, float]:
    """onnxruntime against PyTorch on the graph's checks (other lengths and batches than the
    traced ones): the largest ``|error| / (ATOL + RTOL * |expected|)`` (<= 1 passes) and the
    largest absolute error."""
    ratio, error = 0.0, 0.0
    for expected, actual in run_pairs(graph, path):
        if actual.shape != expected.shape or not torch.equal(actual.isnan(), expected.isnan()):
            return float("inf"), float("inf")  # (a NaN would slip through max() below)
        if not expected.numel():
            continue
        difference = (actual - expected).abs()
        ratio = max(ratio, float((difference / (ATOL + RTOL * expected.abs())).max()))
        error = max(error, float(difference.max()))
    return ratio, error


def _lengths(config: ArchConfig) -> tuple[int, int, int, int]:
    """The traced length (the longest, so shape-dependent code takes its general path), then
    three others to check: a short one, one in the middle and one short of the longest."""
    longest = max(2, config.max_seq_len)
    return longest, min(longest, 5), longest // 2 + 1, max(2, longest - 1)
