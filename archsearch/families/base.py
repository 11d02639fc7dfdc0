"""What a family is: the torch-free description every layer of archsearch reads.

A ``FamilySpec`` holds everything about one attention or feed-forward family that does not
need torch: its settings, its analytic costs (MACs, parameters, activation bytes, buffers,
largest weight), its capabilities and example settings. The PyTorch module is named by an
import string and loaded only when a model is built, so judging a candidate never loads torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archsearch.families.settings import Setting

if TYPE_CHECKING:
    from archsearch.config import ArchConfig, LayerConfig
    from archsearch.families.activations import ActivationBytes

KINDS = ("attention", "ffn", "embedding", "memory")


@dataclass(frozen=True)
class BlockContext:
    """What a family needs to know about where its block sits."""

    layer: LayerConfig
    arch: ArchConfig
    causal: bool  # decoder self-attention: never look ahead
    encoder: bool = False  # part of a seq2seq encoder stack

    @property
    def d_model(self) -> int:
        """The width of this block's stack (a seq2seq encoder may have its own)."""
        return self.arch.encoder_width if self.encoder else self.arch.d_model


def resolve(target: str) -> Any:
    """``"package.module:Name"`` -> the object; imported on first use only."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _nothing(ctx: BlockContext) -> None:
    return None


def _zero(ctx: BlockContext) -> int:
    return 0


def _qkv_head_width(ctx: BlockContext) -> int:
    return ctx.layer.qkv_dim(ctx.d_model) // ctx.layer.heads


def _layer_ok(layer: LayerConfig) -> None:
    return None


def _one(ctx: BlockContext) -> float:
    return 1.0


def _no_int8(ctx: BlockContext) -> tuple[int, int]:
    return 0, 0


@dataclass(frozen=True)
class FamilySpec:
    """One attention or feed-forward family.

    ``macs(ctx, tokens, extra_keys)`` counts multiply-adds for one sequence of ``tokens`` queries
    attending to ``extra_keys`` more keys (recurrent memory) -- the convention FlopCounterMode
    uses for the built module, halved. ``params(ctx)`` is the exact parameter count.
    ``activations`` is ``(ctx, dims) -> ActivationBytes`` for attention and
    ``(ctx, batch, tokens) -> ActivationBytes`` for feed-forward families (None: counted as full
    attention / the dense FFN, and named in every memory estimate).
    """

    name: str
    kind: str  # "attention" or "ffn"
    implementation: str  # import string of the nn.Module class, built as cls(ctx)
    macs: Callable[[BlockContext, int, int], int]
    params: Callable[[BlockContext], int]
    activations: Callable[..., ActivationBytes] | None = None
    settings: tuple[Setting, ...] = ()
    # Rules between settings that need the whole architecture (raise InputError).
    validate: Callable[[BlockContext], None] = _nothing
    # Rules a layer choosing this family must meet on its own (checked by LayerConfig).
    check_layer: Callable[[LayerConfig], None] = _layer_ok
    buffers: Callable[[BlockContext], int] = _zero  # bytes of float32 buffers (not parameters)
    largest_weight: Callable[[BlockContext], int] = _zero  # elements of its largest own tensor
    # Width of one attention head, which rotary positions need to be even.
    head_width: Callable[[BlockContext], int] = _qkv_head_width
    # Sub-modules one layer runs, each with its own per-call overhead (the latency predictor's
    # layer-count feature): 1, or a switch MoE's experts.
    dispatch_units: Callable[[BlockContext], float] = _one
    reads_memory: bool = False  # can attend to recurrent memory (Transformer-XL, compressive)
    kv_cache: bool = False  # has an incremental decoding path (costs.incremental)
    # Honours ArchConfig.bias: every linear it owns takes a bias, counted in ``params``.
    bias: bool = False
    onnx_refusal: str | None = None  # why it does not export to ONNX; None: it does
    # Why its ONNX graph takes sequences of exactly ``max_seq_len`` tokens (shape-dependent
    # Python in its forward); None: the graph takes any length up to ``max_seq_len``.
    onnx_fixed_length: str | None = None
    # (elements, tensors) of its nn.Linear weights that dynamic int8 quantization stores as
    # int8 (``archsearch compress``; one scale and zero point per tensor): every Linear except
    # those its module reads ``.weight`` of directly (``reads_weights``). The rest stays float.
    int8_weights: Callable[[BlockContext], tuple[int, int]] = _no_int8
    # An attention module that returns ``(y, aux_loss)`` like a feed-forward one (a loss that
    # trains a part of its own, SparseFinder's predictor); False: it returns ``y`` alone.
    aux_loss: bool = False
    # Supernet: parameter names (under the block's ``attn.``) that are the shared projections.
    supernet_aliases: Mapping[str, str] = field(default_factory=dict)
    # Supernet: settings that change the shapes of its own tensors beyond the layer's widths;
    # probing a space builds the family at both ends of each one's range (LSRA's split).
    supernet_probe: tuple[str, ...] = ()
    # Synflow's all-ones probe: cut the query/key paths (exponential feature maps overflow).
    probe_cuts_query_key: bool = False
    # Synflow's all-ones probe: its module's ``act`` (a gate) gives ones, so a gated FFN is
    # scored by its value path like the dense FFN (the product of two paths squares the flow).
    probe_cuts_gate: bool = False
    # Named example settings: "tests", "calibration", "benchmark", "separation", "scaling".
    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def module_class(self) -> Any:
        """The PyTorch class (imports torch)."""
        return resolve(self.implementation)

    def build(self, ctx: BlockContext) -> Any:
        """A freshly initialised module for ``ctx`` (imports torch)."""
        return self.module_class()(ctx)

    def example(self, purpose: str) -> dict[str, Any] | None:
        """The settings for ``purpose`` (None when the family names none)."""
        found = self.examples.get(purpose)
        return None if found is None else dict(found)


def _no_update(arch: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    return 0, 0


def _no_bytes(arch: ArchConfig, batch: int, tokens: int) -> int:
    return 0


def _no_weight(arch: ArchConfig) -> int:
    return 0


def _no_memory_int8(arch: ArchConfig) -> tuple[int, int]:
    return 0, 0


@dataclass(frozen=True)
class MemorySpec:
    """One kind of recurrent memory (``ArchConfig.memory``): its analytic costs and bytes."""

    name: str
    # Keys each layer's attention sees beyond the segment, once the memory is full.
    extra_keys: Callable[[ArchConfig], int]
    params: Callable[[ArchConfig], int]  # parameters the memory owns, all layers
    macs: Callable[[ArchConfig, int], int]  # MACs of all layers for a segment of ``tokens``
    kind: str = "memory"
    # import string of the nn.Module class, built as ``cls.for_arch(arch)``
    implementation: str = ""
    # (new state kept per layer, working bytes while computing it) for ``batch`` x ``tokens``.
    update_bytes: Callable[[ArchConfig, int, int], tuple[int, int]] = _no_update
    # Copies of the memory a layer holds while attending (normalised; concatenated, too).
    context_copies: int = 1
    # Bytes the memory's own training keeps for backward, all layers (``batch`` x ``tokens``).
    training_bytes: Callable[[ArchConfig, int, int], int] = _no_bytes
    largest_weight: Callable[[ArchConfig], int] = _no_weight  # elements of its largest tensor
    # Rows of [batch, rows, d_model] each layer's state holds (None: ``extra_keys``).
    state_rows: Callable[[ArchConfig], int] | None = None
    # A read of the memory beside attention (infinity-former): its bytes for one layer,
    # ``(arch, layer, batch, tokens) -> ActivationBytes`` (None: the memory is only keys).
    read_bytes: Callable[[ArchConfig, LayerConfig, int, int], ActivationBytes] | None = None
    # (elements, tensors) of its nn.Linear weights, all layers, that ``compress --int8``
    # stores as int8 (a compressive memory's convolutions stay float).
    int8_weights: Callable[[ArchConfig], tuple[int, int]] = _no_memory_int8

    def build(self, arch: ArchConfig) -> Any:
        """The memory module for ``arch`` (imports torch)."""
        return resolve(self.implementation).for_arch(arch)

    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def example(self, purpose: str) -> dict[str, Any] | None:
        found = self.examples.get(purpose)
        return None if found is None else dict(found)
