"""Scaling Transformer's sparse Q/K/V (Jaszczur et al., 2021): full attention whose query, key
and value projections compute one output unit per block of ``qkv_sparsity`` units per token.

The mechanism is the sparse feed-forward family's (``families/sparse.py``): a low-rank
controller scores every unit and picks one per block; only the picked rows of W_q, W_k and W_v
are multiplied. The output projection stays dense. See ``archsearch.models.attention.sparse_qkv``.

A family of its own rather than a setting of ``full``: its controller, costs and activation bytes
differ from full attention's, and full attention keeps its KV-cache decoding path and memory
reading untouched. Its dense projections keep full attention's names (``proj.q`` ...), so the
supernet shares them with every other attention family.
"""

from __future__ import annotations

from archsearch.errors import InputError
from archsearch.families.activations import F32, I64, ActivationBytes, Dims, dense_attention
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.projections import projection_params
from archsearch.families.settings import Setting, integer
from archsearch.families.sparse import CHUNK_ELEMENTS, controller_rank


def validate_sparse_qkv(ctx: BlockContext) -> None:
    width = ctx.layer.qkv_dim(ctx.d_model)
    if width % ctx.layer.qkv_sparsity:
        raise InputError(
            f"sparse Q/K/V needs the attention width ({width}) divisible by qkv_sparsity "
            f"({ctx.layer.qkv_sparsity})",
            key="qkv_sparsity",
        )


def qkv_controller_params(ctx: BlockContext) -> int:
    """A shared d -> r bottleneck and one r -> width head per projection (none at sparsity 1)."""
    if ctx.layer.qkv_sparsity == 1:
        return 0
    rank = controller_rank(ctx.d_model)
    return ctx.d_model * rank + 3 * rank * ctx.layer.qkv_dim(ctx.d_model)


def sparse_qkv_params(ctx: BlockContext) -> int:
    """The four dense projections plus the controller."""
    return projection_params(ctx) + qkv_controller_params(ctx)


def sparse_qkv_int8(ctx: BlockContext) -> tuple[int, int]:
    """At sparsity 1, the four projections. Above it, the module reads ``proj.q/k/v``'s
    weights by picked rows (they stay float): the output projection and the controller's four
    linears are int8."""
    d, width = ctx.d_model, ctx.layer.qkv_dim(ctx.d_model)
    if ctx.layer.qkv_sparsity == 1:
        return 4 * d * width, 4
    return width * d + qkv_controller_params(ctx), 5


def sparse_qkv_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Controller, q/k/v over ``width / qkv_sparsity`` units each, the dense output
    projection, and Q.K^T and A.V over the whole (dense-kernel) score matrix. Gathers, the
    scatter back to ``width`` channels, Gumbel noise and the gate are not matmuls: not counted.
    ``extra_keys`` is always 0 (no recurrent memory)."""
    d, width = ctx.d_model, ctx.layer.qkv_dim(ctx.d_model)
    picked = width // ctx.layer.qkv_sparsity
    controller = tokens * qkv_controller_params(ctx) if ctx.layer.qkv_sparsity > 1 else 0
    projections = 3 * tokens * d * picked + tokens * width * d
    return controller + projections + 2 * tokens * tokens * width


def sparse_qkv_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Full attention's tensors (fused SDPA after dense-shaped q, k, v) plus the controller's:
    its bottleneck, the scores of every unit of q, k and v, and per projection the picked
    units (int64), their values and, in training, the softmax terms behind the gate."""
    full = dense_attention(dims, 0, 2 * dims.bk(dims.width))
    if ctx.layer.qkv_sparsity == 1:
        return full
    rows = dims.batch * dims.tokens
    blocks = dims.width // ctx.layer.qkv_sparsity
    rank = controller_rank(ctx.d_model)
    scores = dims.bt(dims.width)
    picked = rows * blocks * F32
    units = rows * blocks * I64
    buffer = min(max(1, CHUNK_ELEMENTS // (blocks * ctx.d_model)), rows) * blocks * ctx.d_model
    saved = full.saved + dims.bt(rank) + 3 * (scores + 2 * units + 3 * picked)
    controller = dims.bt(rank) + 3 * scores  # every unit's scores, alive through the loop
    peak = max(
        full.peak,
        controller + 2 * scores + buffer * F32 + 2 * units + 2 * picked,  # the third gather
        controller + 4 * scores + units + picked,  # the third scatter back to width channels
    )
    return ActivationBytes(saved, peak, full.cache, transient=buffer * F32)


SPEC = FamilySpec(
    name="sparse_qkv",
    kind="attention",
    implementation="archsearch.models.attention.sparse_qkv:SparseQKVAttention",
    macs=sparse_qkv_macs,
    params=sparse_qkv_params,
    int8_weights=sparse_qkv_int8,
    activations=sparse_qkv_activations,
    settings=(
        Setting(
            "qkv_sparsity",
            "int",
            1,
            integer(1),
            "q/k/v units per block, one computed per block (Scaling Transformer)",
        ),
    ),
    validate=validate_sparse_qkv,
    # Supernet: its q/k/v/output projections keep full attention's names, so they are the
    # layer's shared ones (no aliases); its own tensors are leading slices (no probe needed).
    examples={
        "tests": {"qkv_sparsity": 4},
        "calibration": {"qkv_sparsity": 4},
        "benchmark": {"qkv_sparsity": 4},
    },
)
