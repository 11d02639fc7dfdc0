"""SparseFinder (Treviso et al., 2022): predicted attention sparsity.

A learned low-dimensional projection of each head's queries and keys (``finder_dim`` wide)
scores every earlier key; each query attends only to the ``finder_k`` best-scored keys (the
distance-based variant of the paper, with the inner product in the projected space as the
score, and a fixed top-k instead of a threshold so costs are exact). The projection is trained
by an auxiliary loss to rank keys as the dense attention does. See
``archsearch.models.attention.sparsefinder``.
"""

from __future__ import annotations

from archsearch.families.activations import (
    BOOL,
    F32,
    I64,
    ActivationBytes,
    Dims,
    projections_peak,
    projections_saved,
)
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.projections import projection_int8, projection_macs, projection_params
from archsearch.families.settings import Setting, integer

# Weight of the finder's loss (KL from the dense attention to the projected scores' softmax).
# It trains the finder's projection only; kept small so that, under the trainer's clipping of
# the total gradient norm, it does not shrink the language model's own step.
FINDER_LOSS_WEIGHT = 0.1


def attended_keys(ctx: BlockContext, keys: int) -> int:
    """Keys each query attends to: ``finder_k``, or every key of a shorter sequence."""
    return min(ctx.layer.finder_k, keys)


def finder_params(ctx: BlockContext) -> int:
    """The four projections plus, per head, a query and a key projection head_dim -> r."""
    width = ctx.layer.qkv_dim(ctx.d_model)
    return projection_params(ctx) + 2 * width * ctx.layer.finder_dim


def finder_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Projections; the finder's projections ``2 T W r``; predicted scores over the whole
    (dense-kernel) T x T matrix in r dimensions, per head; then Q.K and A.V over the ``k``
    gathered keys of each query: ``2 T k W``. Top-k, gathers, masks and softmax are not
    matmuls and not counted. Inference only: training adds the dense teacher scores (``T^2 W``)
    behind the finder's loss. ``extra_keys`` is always 0 (no recurrent memory)."""
    layer = ctx.layer
    width = layer.qkv_dim(ctx.d_model)
    r = layer.finder_dim
    predict = 2 * tokens * width * r + layer.heads * tokens * tokens * r
    attend = 2 * tokens * attended_keys(ctx, tokens) * width
    return projection_macs(ctx, tokens, 0) + predict + attend


def finder_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Projections as full attention's; the projected queries and keys and the predicted
    [T, S] scores per head (with their masked copy and the boolean mask when causal), freed once
    the top-k indices (int64) are taken; then the gathered keys and values [T, k, head_dim], the
    k scores, their softmax and the outputs. Training also keeps the dense teacher's softmax,
    the student's log-softmax and their masks for the finder's loss."""
    bh, t = dims.batch * dims.heads, dims.tokens
    k = attended_keys(ctx, dims.keys)
    r = ctx.layer.finder_dim
    small = 2 * bh * t * r * F32  # projected queries and keys
    grid = bh * t * dims.keys * F32  # one [T, S] float matrix per head
    mask = t * dims.keys * BOOL if ctx.causal else 0
    index = bh * t * k * I64
    picks = bh * t * k * BOOL if ctx.causal else 0  # picks on future keys
    gathered = bh * t * k * dims.head_dim * F32  # keys or values of each query
    scores = bh * t * k * F32
    vec = dims.bt(dims.width)
    rotated = vec + 2 * dims.bk(dims.width)
    masked = 2 * grid if ctx.causal else grid
    saved = projections_saved(dims) + small + 2 * grid + 2 * mask + 3 * index + picks
    saved += 2 * gathered + scores + vec
    peak = max(
        projections_peak(dims),
        rotated + small + masked + mask,  # predicted scores and their masked copy
        rotated + grid + index + scores,  # top-k
        rotated + index + 2 * gathered + 3 * scores + picks,
        rotated + index + 2 * gathered + 2 * scores + 3 * vec + dims.bt(dims.d_model),
    )
    # Training's temporaries beyond what it keeps: the dense teacher's scores, masked copy and
    # softmax and the student's log-softmax (before the gathered tensors exist), or the scaled
    # and masked k scores and the copies of v and the heads merged at the end.
    teacher = small + masked + 2 * grid - (2 * gathered + scores + vec)
    transient = max(teacher, 2 * scores + 2 * vec + index)
    return ActivationBytes(saved, peak, 2 * dims.bk(dims.width), transient=transient)


SPEC = FamilySpec(
    name="sparsefinder",
    kind="attention",
    implementation="archsearch.models.attention.sparsefinder:SparseFinderAttention",
    macs=finder_macs,
    params=finder_params,
    int8_weights=projection_int8,  # the finder's projections are parameters: float
    activations=finder_activations,
    settings=(
        Setting("finder_dim", "int", 4, integer(1), "width of the finder's projection per head"),
        Setting("finder_k", "int", 16, integer(1), "keys each query attends to (predicted)"),
    ),
    aux_loss=True,
    # Supernet: its q/k/v/output projections keep full attention's names, so they are the
    # layer's shared ones (no aliases); its own tensors are leading slices (no probe needed).
    examples={
        "tests": {"finder_dim": 4, "finder_k": 8},
        "calibration": {"finder_dim": 8, "finder_k": 32},
        "benchmark": {"finder_dim": 8, "finder_k": 16},
    },
)
