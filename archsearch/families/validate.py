"""Checks that need the families: is each layer's combination one we can build? (torch-free)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.errors import InputError
from archsearch.families.base import BlockContext
from archsearch.families.registry import all_specs, attention_spec, ffn_spec

if TYPE_CHECKING:
    from archsearch.config import ArchConfig


def validate_config(config: ArchConfig) -> None:
    """Raise InputError naming the key when a layer's families cannot be combined as asked."""
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
            if config.memory != "none" and not attention.reads_memory:
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
