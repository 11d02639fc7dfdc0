"""Analytic MACs and parameters, computed from the config alone (no model is built).

Each family supplies its own formulas through its spec (``archsearch.families``); this module only
walks the architecture and sums them per part, so a new family needs no change here. Torch-free.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from archsearch.config import ArchConfig, LayerConfig
from archsearch.costs.convention import PARTS, CountingConvention
from archsearch.families import BlockContext, attention_spec, ffn_spec, memory_spec
from archsearch.families.cross import cross_attention_macs, cross_attention_params
from archsearch.families.retrieval import cca_macs, cca_params, encoder_macs, encoder_params
from archsearch.families.validate import validate_config

BYTES_PER_PARAM = 4  # float32 weights


@dataclass(frozen=True)
class Costs:
    """MACs and parameters of one architecture under one counting convention."""

    macs: int  # under the convention (excluded parts left out)
    params: int  # unique parameters, everything included
    counted_params: int  # parameters under the convention (excluded parts left out)
    macs_by_part: dict[str, int] = field(default_factory=dict)  # every part, nothing excluded
    params_by_part: dict[str, int] = field(default_factory=dict)
    convention: CountingConvention = field(default_factory=CountingConvention)

    @property
    def total_macs(self) -> int:
        """MACs of every part, the figure FlopCounterMode reports (as FLOPs / 2)."""
        return sum(self.macs_by_part.values())

    @property
    def weight_bytes(self) -> int:
        return self.params * BYTES_PER_PARAM

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "params": self.params,
            "counted_params": self.counted_params,
            "total_macs": self.total_macs,
            "weight_bytes": self.weight_bytes,
            "macs_by_part": dict(self.macs_by_part),
            "params_by_part": dict(self.params_by_part),
            "convention": self.convention.to_dict(),
        }


def analytic_costs(config: ArchConfig, convention: CountingConvention) -> Costs:
    """Walk embeddings, every block and the output head, summing each family's formulas."""
    validate_config(config)
    macs: Counter[str] = Counter({part: 0 for part in PARTS})
    params: Counter[str] = Counter({part: 0 for part in PARTS})
    d, e, vocab = config.d_model, config.embedding_width, config.vocab_size
    target = convention.tokens
    source = convention.encoder_tokens if config.task == "seq2seq" else 0

    params["embedding"] += vocab * e
    # the source shares the target's table unless the encoder has a width of its own
    shared_source = source if config.encoder_width == d else 0
    if e != d:
        params["embedding_projection"] += e * d
        macs["embedding_projection"] += (target + shared_source) * e * d
        params["output_projection"] += d * e
        macs["output_projection"] += target * d * e
    if config.task == "seq2seq" and config.encoder_width != d:
        source_d = config.encoder_width
        source_e = config.embed_dim if config.embed_dim is not None else source_d
        params["embedding"] += vocab * source_e
        if source_e != source_d:
            params["embedding_projection"] += source_e * source_d
            macs["embedding_projection"] += source * source_e * source_d
    if not config.tie_embeddings:
        params["output"] += e * vocab
    macs["output"] += target * e * vocab
    if config.norm == "pre":  # post-norm blocks end normalised: no final norms (fairseq)
        params["norms"] += 2 * d
        if config.task == "seq2seq":
            params["norms"] += 2 * config.encoder_width

    memory = memory_spec(config.memory)
    extra_keys = memory.extra_keys(config)
    stacks = [(config.layers, True, False, target, extra_keys)]
    if config.task == "seq2seq":
        stacks.append((config.encoder_layers, False, True, source, 0))
    for layers, causal, encoder, tokens, extra in stacks:
        for index, layer in enumerate(layers):
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            macs["attention"] += attention_spec(layer.attention).macs(ctx, tokens, extra)
            macs["ffn"] += ffn_spec(layer.ffn).macs(ctx, tokens, 0)
            if config.task == "seq2seq" and not encoder:
                macs["cross_attention"] += cross_attention_macs(ctx, tokens, source)
            if not encoder:
                macs["retrieval"] += cca_macs(config, layer, tokens)
            if index == 0 or not config.share_layers:
                _add_layer_params(params, ctx, layer, config, encoder)
    macs["memory"] += memory.macs(config, target)
    params["memory"] += memory.params(config)
    macs["retrieval"] += encoder_macs(config, target)
    params["retrieval"] += encoder_params(config)

    counted_macs = sum(v for k, v in macs.items() if k not in convention.exclude)
    counted_params = sum(v for k, v in params.items() if k not in convention.exclude)
    return Costs(
        macs=counted_macs,
        params=sum(params.values()),
        counted_params=counted_params,
        macs_by_part=dict(macs),
        params_by_part=dict(params),
        convention=convention,
    )


def _add_layer_params(
    params: Counter[str], ctx: BlockContext, layer: LayerConfig, arch: ArchConfig, encoder: bool
) -> None:
    d = ctx.d_model
    params["norms"] += 2 * (2 * d)
    params["attention"] += attention_spec(layer.attention).params(ctx)
    params["ffn"] += ffn_spec(layer.ffn).params(ctx)
    if arch.task == "seq2seq" and not encoder:
        params["norms"] += 2 * d
        params["cross_attention"] += cross_attention_params(ctx)
    if not encoder:
        params["retrieval"] += cca_params(arch, layer)
