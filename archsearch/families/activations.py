"""Activation bytes: what a block's tensors take, counted from shapes.

Each family's spec answers three questions about one layer, in bytes, for ``batch`` sequences
of ``tokens`` queries (``keys`` = tokens plus recurrent memory):

- ``saved``: what autograd keeps for the backward pass (training), the module's input included;
- ``peak``: the most bytes the module holds at once in an inference forward, its output
  included, on top of its input (which the block holds);
- ``cache``: what an incremental decoder keeps per layer to generate the next token (a KV cache,
  or a running state for linear attention).

The counts follow the modules' code operator by operator (what PyTorch allocates, views
excluded, float32) and are checked against ``archsearch.costs.tracker`` in the tests. This
module holds the pieces several families share: the projections, fused SDPA, the dense FFN.
"""

from __future__ import annotations

from dataclasses import dataclass

F32, I64, BOOL = 4, 8, 1


@dataclass(frozen=True)
class ActivationBytes:
    """Bytes of one module: kept for backward, inference peak, and generation cache."""

    saved: int
    peak: int
    cache: int = 0
    transient: int = 0  # training forward: temporaries beyond ``saved`` (large ones only)


@dataclass(frozen=True)
class Dims:
    """Shapes of one attention call: ``tokens`` queries over ``keys`` keys (memory first)."""

    batch: int
    tokens: int
    keys: int
    d_model: int
    width: int  # attention width (q/k/v)
    heads: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def half(self) -> int:
        return self.head_dim // 2

    def bt(self, channels: int) -> int:
        """Bytes of a float tensor [batch, tokens, channels]."""
        return self.batch * self.tokens * channels * F32

    def bk(self, channels: int) -> int:
        """Bytes of a float tensor [batch, keys, channels]."""
        return self.batch * self.keys * channels * F32


def rotary_tables(positions: int, half: int) -> int:
    """cos and sin tables [positions, half] kept by rotary's multiplications."""
    return 2 * positions * half * F32


def projections_peak(dims: Dims) -> int:
    """Peak inside ``Projections.qkv``: while k is rotated, q, k, v, the rotated q and rotary's two
    half-width products of k are alive (plus ``cat(memory, x)`` when there is memory)."""
    source = dims.bk(dims.d_model) if dims.keys > dims.tokens else 0
    rotary = 2 * dims.bk(dims.width) + 3 * dims.keys * dims.half * F32
    return source + 2 * dims.bt(dims.width) + 2 * dims.bk(dims.width) + rotary


def projections_saved(dims: Dims) -> int:
    """The block's normalised input (saved by q), ``cat(memory, x)`` (by k, v), rotary tables,
    the rotated q and k and v."""
    source = dims.bk(dims.d_model) if dims.keys > dims.tokens else 0
    tables = rotary_tables(dims.tokens, dims.half) + rotary_tables(dims.keys, dims.half)
    rotated = dims.bt(dims.width) + 2 * dims.bk(dims.width)
    return dims.bt(dims.d_model) + source + tables + rotated


def sdpa(dims: Dims, rows: int, mask_cells: int) -> tuple[int, int]:
    """(output, log-sum-exp) bytes of SDPA over ``rows`` query rows per head, and a float mask."""
    lse = dims.batch * dims.heads * rows * F32
    return dims.batch * dims.heads * rows * dims.head_dim * F32, lse + mask_cells * F32


def dense_attention(dims: Dims, mask_cells: int, cache: int) -> ActivationBytes:
    """One fused SDPA over every key (``mask_cells`` of float mask when masked explicitly)."""
    out, extra = sdpa(dims, dims.tokens, mask_cells)
    merged = dims.bt(dims.width)
    saved = projections_saved(dims) + out + extra + merged
    after = dims.bt(dims.width) + 2 * dims.bk(dims.width)  # rotated q, k and v
    peak = max(projections_peak(dims), after + out + extra + merged + dims.bt(dims.d_model))
    return ActivationBytes(saved, peak, cache)


def dense_ffn_parts(d: int, hidden: int, tokens: int, activation: str) -> ActivationBytes:
    """Linear -> activation -> Linear over ``tokens`` rows: input, pre-activation (GELU only:
    ReLU keeps its output, which the second Linear keeps too) and activation kept."""
    pre = tokens * hidden * F32 if activation == "gelu" else 0
    saved = tokens * d * F32 + pre + tokens * hidden * F32
    peak = max(2 * tokens * hidden * F32, tokens * hidden * F32 + tokens * d * F32)
    return ActivationBytes(saved, peak)
