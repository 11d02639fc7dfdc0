"""Switch Transformer mixture of experts: top-1 routing to dense FFN experts with a capacity.

Each token runs through at most one expert, which takes at most ``expert_capacity`` tokens of
the batch per forward. See ``archsearch.models.ffn.moe``.
"""

from __future__ import annotations

import math

from archsearch.families.activations import F32, I64, ActivationBytes, dense_ffn_parts
from archsearch.families.base import BlockContext, FamilySpec
from archsearch.families.dense import dense_macs, dense_params
from archsearch.families.settings import Setting, integer, number


def expert_capacity(tokens: int, experts: int, capacity_factor: float) -> int:
    """Tokens one expert may take per forward; rounding guards ceil against float noise."""
    return max(1, math.ceil(round(capacity_factor * tokens / experts, 9)))


def switch_params(ctx: BlockContext) -> int:
    """Router plus ``experts`` independent dense FFNs."""
    return ctx.d_model * ctx.layer.experts + ctx.layer.experts * dense_params(ctx)


def switch_macs(ctx: BlockContext, tokens: int, extra_keys: int) -> int:
    """Router for every token plus one dense FFN per processed token.

    Assumes a balanced load: ``min(tokens, capacity * experts)`` tokens run an expert (all of
    them when capacity_factor >= 1). A real forward processes at most that many (overflowing
    tokens skip the FFN), so FlopCounterMode measures this figure or less.
    """
    experts = ctx.layer.experts
    capacity = expert_capacity(tokens, experts, ctx.layer.capacity_factor)
    processed = min(tokens, capacity * experts)
    return tokens * ctx.d_model * experts + dense_macs(ctx, processed, 0)


def switch_activations(ctx: BlockContext, batch: int, tokens: int) -> ActivationBytes:
    """Router probabilities, then each expert's dense FFN over its tokens, their outputs
    concatenated and gated. Routing is data-dependent: this is the most it can take, with
    every token reaching an expert (up to ``capacity * experts``) and one expert taking a full
    ``capacity``; tokens a router drops only lower the measured figure."""
    layer = ctx.layer
    d, hidden, e = ctx.d_model, layer.hidden_dim(ctx.d_model), layer.experts
    rows = batch * tokens
    capacity = expert_capacity(rows, e, layer.capacity_factor)
    run = min(rows, capacity * e)  # tokens that reach an expert, at most
    routing = rows * e * F32 * 2 + rows * (F32 + 3 * I64) + rows * e * I64 * 2
    experts = dense_ffn_parts(d, hidden, run, layer.activation)
    busiest = dense_ffn_parts(d, hidden, min(run, capacity), layer.activation)  # one expert
    outputs = run * d * F32
    saved = rows * d * F32 + rows * e * F32 + rows * F32 + experts.saved + 2 * outputs
    saved += run * (I64 + F32)
    peak = max(
        routing,
        # earlier experts' outputs and this expert's inputs (at most every routed token), and
        # this expert's FFN (at most ``capacity`` tokens)
        routing // 2 + outputs + busiest.peak,
        routing // 2 + 3 * outputs + rows * d * F32,
    )
    return ActivationBytes(saved, peak)


def switch_units(ctx: BlockContext) -> float:
    """Each expert is a dense FFN of its own: one call per expert."""
    return float(ctx.layer.experts)


SPEC = FamilySpec(
    name="switch_moe",
    kind="ffn",
    implementation="archsearch.models.ffn.moe:SwitchFFN",
    macs=switch_macs,
    params=switch_params,
    int8_weights=lambda ctx: (switch_params(ctx), 1 + 2 * ctx.layer.experts),  # router, experts
    activations=switch_activations,
    settings=(
        Setting("experts", "int", 1, integer(1), "number of experts"),
        Setting(
            "capacity_factor",
            "float",
            1.25,
            number(0.0, low_open=True),
            "expert capacity relative to an even split",
        ),
    ),
    dispatch_units=switch_units,
    examples={
        "tests": {"experts": 4, "capacity_factor": 4.0},
        "calibration": {"experts": 4, "capacity_factor": 2.0},
        "benchmark": {"experts": 4},
    },
)
