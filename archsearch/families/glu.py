"""Gated feed-forward (Shazeer 2020, "GLU Variants Improve Transformer"): down(act(gate x) * up x).

The layer's ``activation`` gates the value path, so GELU makes GEGLU and ReLU ReGLU. It is the
gating the Evolved Transformer's search put into its cells. A third matrix costs a third more
MACs and parameters than the dense FFN at the same hidden width; ``ffn_ratio`` sets that width
as for the dense FFN. Synflow takes the gate as ones (``probe_cuts_gate``): under its probe the
gate's product squares the flow (a 6-layer Lite Transformer with gated FFNs overflowed float64),
which would rank gated layers by a proxy artefact. See ``archsearch.models.ffn.glu``.
"""

from __future__ import annotations

from archsearch.families.activations import F32, ActivationBytes
from archsearch.families.base import BlockContext, FamilySpec


def glu_params(ctx: BlockContext) -> int:
    d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
    return 3 * d * hidden + (2 * hidden + d if ctx.arch.bias else 0)


def glu_int8(ctx: BlockContext) -> tuple[int, int]:
    """The gate, value and output projections' weights, stored as int8 by ``compress``."""
    return 3 * ctx.d_model * ctx.layer.hidden_dim(ctx.d_model), 3


def glu_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Three matrix products per token; the gating product is elementwise (no MACs, as
    FlopCounterMode counts them)."""
    return tokens * 3 * ctx.d_model * ctx.layer.hidden_dim(ctx.d_model)


def glu_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    """Kept for backward: the input, the gate's pre-activation (GELU only: ReLU keeps its
    output, which the product keeps too), the gate, the value and their product. Inference
    peak: gate, value and product alive at once (the gate's pre-activation is freed as the
    activation returns), or the product and the output."""
    d, hidden, rows = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model), batch * tokens
    pre = rows * hidden * F32 if ctx.layer.activation == "gelu" else 0
    saved = rows * d * F32 + pre + 3 * rows * hidden * F32
    peak = max(3 * rows * hidden * F32, rows * hidden * F32 + rows * d * F32)
    return ActivationBytes(saved, peak)


SPEC = FamilySpec(
    name="glu",
    kind="ffn",
    implementation="archsearch.models.ffn.glu:GatedFFN",
    macs=glu_macs,
    params=glu_params,
    int8_weights=glu_int8,
    activations=glu_activations,
    bias=True,
    probe_cuts_gate=True,
    examples={"tests": {}, "calibration": {}, "benchmark": {}},
)
