"""Lite Transformer's long-short range attention (LSRA, Wu et al. 2020).

The first ``a = round(d_model * lsra_split)`` channels go to a full-attention branch, the other
``d_model - a`` to a convolution branch (GLU, lightweight or dynamic convolution, linear); the
two outputs are concatenated. See ``archsearch.models.attention.lsra`` and ``convolution``.
"""

from __future__ import annotations

from archsearch.errors import InputError
from archsearch.families.activations import (
    F32,
    ActivationBytes,
    Dims,
    projections_peak,
    projections_saved,
)
from archsearch.families.activations import sdpa as sdpa_bytes
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.settings import Setting, choice, integer, number

CONV_TYPES = ("lightweight", "dynamic")


def branch_widths(ctx: BlockContext) -> tuple[int, int]:
    """(attention channels, convolution channels); they add up to d_model."""
    attention = round(ctx.d_model * ctx.layer.lsra_split)
    return attention, ctx.d_model - attention


def conv_branch_params(channels: int, kernel: int, groups: int, conv_type: str) -> int:
    """GLU projection (2c^2), output projection (c^2) and the kernels."""
    kernels = groups * kernel if conv_type == "lightweight" else channels * groups * kernel
    return 3 * channels * channels + kernels


def conv_branch_macs(channels: int, kernel: int, groups: int, conv_type: str, tokens: int) -> int:
    """Per token: GLU projection 2c^2, output c^2, the convolution c*K, plus, for dynamic
    convolution, the kernel prediction c*H*K. Softmax, GLU and padding are element-wise and
    uncounted, as FlopCounterMode does."""
    per_token = 3 * channels * channels + channels * kernel
    if conv_type == "dynamic":
        per_token += channels * groups * kernel
    return tokens * per_token


def lsra_params(ctx: BlockContext) -> int:
    """Four a x a projections plus the convolution branch (if any)."""
    a, c = branch_widths(ctx)
    conv = conv_branch_params(c, ctx.layer.conv_kernel, ctx.layer.heads, ctx.layer.conv_type)
    return 4 * a * a + (conv if c else 0)


def lsra_int8(ctx: BlockContext) -> tuple[int, int]:
    """The four projections, the GLU and output projections and a dynamic convolution's kernel
    predictor are int8; lightweight kernels stay float."""
    a, c = branch_widths(ctx)
    if not c:
        return 4 * a * a, 4
    layer = ctx.layer
    if layer.conv_type == "dynamic":
        return 4 * a * a + 3 * c * c + c * layer.heads * layer.conv_kernel, 7
    return 4 * a * a + 3 * c * c, 6


def lsra_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Attention branch: four a x a projections per token and Q.K^T, A.V over the whole
    (dense-kernel, even when causal) tokens x tokens score matrix: 4*T*a^2 + 2*T^2*a.
    Convolution branch: ``conv_branch_macs`` (projections, convolution, dynamic kernels).
    ``extra_keys`` is always 0: the family does not support memory."""
    a, c = branch_widths(ctx)
    attention = 4 * tokens * a * a + 2 * tokens * tokens * a
    layer = ctx.layer
    conv = conv_branch_macs(c, layer.conv_kernel, layer.heads, layer.conv_type, tokens)
    return attention + (conv if c else 0)


def lsra_activations(ctx: BlockContext, dims: Dims) -> ActivationBytes:
    """Attention on the first channels (full, fused), convolution branch on the rest."""
    layer = ctx.layer
    a, c = branch_widths(ctx)
    branch = Dims(dims.batch, dims.tokens, dims.tokens, dims.d_model, a, layer.heads)
    out, extra = sdpa_bytes(branch, dims.tokens, 0)
    merged = branch.bt(a)
    attn_saved = projections_saved(branch) - branch.bt(dims.d_model) + out + extra + merged
    attn_peak = max(
        projections_peak(branch), 3 * branch.bt(a) + out + extra + merged + branch.bt(a)
    )
    saved = dims.bt(dims.d_model) + attn_saved
    cache = 2 * branch.bk(a)
    if not c:
        return ActivationBytes(saved, attn_peak, cache)
    k, groups = layer.conv_kernel, layer.heads
    glu_in = dims.bt(2 * c)
    glu_out = dims.bt(c)
    padded = dims.batch * (dims.tokens + k - 1) * c * F32
    if layer.conv_type == "lightweight":
        conv_saved = padded + c * k * F32
        conv_peak = glu_out + padded + dims.bt(c)
    else:
        kernels = dims.batch * dims.tokens * groups * k * F32
        # unfolded windows are a view of the padded input, but flattening them for the batched
        # matmul copies them once the batch has more than one sequence
        windows = dims.bt(c) * k if dims.batch > 1 else 0
        conv_saved = glu_out + kernels + (windows or padded)
        conv_peak = glu_out + max(2 * kernels, kernels + padded + windows + dims.bt(c))
    saved += glu_in + conv_saved + dims.bt(c)
    conv = max(glu_in + glu_out, conv_peak, dims.bt(c) + dims.bt(c))
    branch_locals = 5 * branch.bt(a) + extra  # q, k, v, SDPA output and the branch output
    peak = max(attn_peak, branch_locals + conv, branch_locals + dims.bt(c) + dims.bt(dims.d_model))
    cache += dims.batch * (k - 1) * c * F32
    return ActivationBytes(saved, peak, cache)


def lsra_largest(ctx: BlockContext) -> int:
    """The branch's a x a projections, the GLU's [2c, c] and the kernels."""
    layer = ctx.layer
    width, conv = branch_widths(ctx)
    return max(width * width, 2 * conv * conv, conv * layer.heads * layer.conv_kernel)


def validate_lsra(ctx: BlockContext) -> None:
    """The attention width must split into even-width heads; no attn_dim, no window, and a
    convolution branch (if any) with a kernel of at least 2."""
    layer, d = ctx.layer, ctx.d_model
    if layer.attn_dim is not None:
        raise InputError(
            "lsra sets its attention width from lsra_split; leave attn_dim unset", key="attn_dim"
        )
    if layer.window > 0:
        raise InputError(
            "lsra's attention branch is global (the convolution branch is the local part); "
            "window must be 0",
            key="window",
        )
    a, c = branch_widths(ctx)
    step = 2 * layer.heads
    if a < step or a % step:
        raise InputError(
            f"{layer.lsra_split} puts round({d} * {layer.lsra_split}) = {a} channels on the "
            f"attention branch; that must be a positive multiple of 2 * heads = {step} (even "
            f"head width for rotary positions). Valid lsra_split values for d_model={d}, "
            f"heads={layer.heads}: {_valid_splits(d, step)}",
            key="lsra_split",
        )
    if c and layer.conv_kernel < 2:
        raise InputError(
            "a softmax-normalised kernel of size 1 is the constant 1 (its weights would never "
            "train); use conv_kernel >= 2",
            key="conv_kernel",
        )
    # The convolution's heads kernel groups need c % heads == 0: with a a multiple of heads,
    # that is d_model % heads == 0, which ArchConfig already checks when attn_dim is unset.


def _valid_splits(d_model: int, step: int) -> str:
    """The splits m * step / d_model, listed in full when short, else as a progression."""
    values = [m * step / d_model for m in range(1, d_model // step + 1)]
    if not values:
        return f"none (d_model is smaller than {step})"
    shown = [f"{v:.6g}" for v in values]
    if len(shown) <= 8:
        return ", ".join(shown)
    return f"{shown[0]}, {shown[1]}, ..., {shown[-1]} (multiples of {step}/{d_model})"


def lsra_head_width(ctx: BlockContext) -> int:
    return branch_widths(ctx)[0] // ctx.layer.heads


SPEC = FamilySpec(
    name="lsra",
    kind="attention",
    implementation="archsearch.models.attention.lsra:LongShortRangeAttention",
    macs=lsra_macs,
    params=lsra_params,
    int8_weights=lsra_int8,
    activations=lsra_activations,
    settings=(
        Setting(
            "lsra_split",
            "float",
            0.5,
            number(0.0, 1.0, low_open=True),
            "fraction of channels on the attention branch",
        ),
        Setting("conv_kernel", "int", 7, integer(1), "convolution kernel size"),
        Setting("conv_type", "str", "lightweight", choice(CONV_TYPES), "lightweight or dynamic"),
    ),
    validate=validate_lsra,
    largest_weight=lsra_largest,
    head_width=lsra_head_width,
    kv_cache=True,
    supernet_probe=("lsra_split",),
    examples={
        "tests": {"lsra_split": 0.5, "conv_kernel": 5, "conv_type": "dynamic"},
        "calibration": {"lsra_split": 0.5, "conv_kernel": 7},
        "benchmark": {"lsra_split": 0.5, "conv_kernel": 7},
        "separation": {"lsra_split": 0.5, "conv_kernel": 7},
        "scaling": {"lsra_split": 0.5, "conv_kernel": 7},
    },
)
