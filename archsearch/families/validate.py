"""Checks that need the families: is each layer's combination one we can build? (torch-free)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.errors import InputError
from archsearch.families.base import BlockContext
from archsearch.families.registry import all_specs, attention_spec, ffn_spec, memory_spec
from archsearch.families.retrieval import encoder_layer, retrieves

if TYPE_CHECKING:
    from archsearch.config import ArchConfig


def validate_config(config: ArchConfig) -> None:
    """Raise InputError naming the key when a layer's families cannot be combined as asked."""
    memory_keys = memory_spec(config.memory).extra_keys(config)  # infinity with mem_len 0: none
    stacks = [(config.layers, True, False, ""), (config.encoder_layers, False, True, "encoder_")]
    for layers, causal, encoder, prefix in stacks:
        for index, layer in enumerate(layers):
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            try:
                attention = attention_spec(layer.attention)
                ffn = ffn_spec(layer.ffn)
            except NotImplementedError as exc:
                raise InputError(str(exc), key=prefix + "attention") from None
            for kind, spec in (("attention", attention), ("ffn", ffn)):
                if config.bias and not spec.bias:
                    with_bias = ", ".join(f"{s.kind} {s.name}" for s in all_specs() if s.bias)
                    raise InputError(
                        f"{kind} '{spec.name}' has no biased variant (layer {index}); "
                        f"bias: true works with {with_bias}",
                        key="bias",
                    )
            if memory_keys and not attention.reads_memory:
                raise InputError(
                    f"attention '{layer.attention}' cannot attend to recurrent memory "
                    f"(layer {index})",
                    key="memory",
                )
            try:
                attention.validate(ctx)
                ffn.validate(ctx)
            except InputError as exc:
                raise exc.under(prefix.rstrip("_")) if prefix else exc from None
            if attention.head_width(ctx) % 2:
                raise InputError(
                    f"head width must be even for rotary positions (layer {index})",
                    key=prefix + "heads",
                )
    if config.norm == "post" and (
        retrieves(config) or memory_spec(config.memory).read_bytes is not None
    ):
        raise InputError(
            "post-norm blocks have no retrieval nor infinity memory; use norm: pre", key="norm"
        )
    if retrieves(config):
        ctx = BlockContext(layer=encoder_layer(config), arch=config, causal=False, encoder=True)
        if attention_spec("full").head_width(ctx) % 2:
            raise InputError(
                "the neighbour encoder (layer 0's widths) needs an even head width for rotary "
                "positions",
                key="heads",
            )
