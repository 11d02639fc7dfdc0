"""What a dynamic-int8 model file stores, from the config alone (torch-free).

``archsearch compress --int8`` stores each quantized linear's weight as int8 plus one float32
scale and one int32 zero point, and everything else in float32: the embedding table (and an
output layer tied to it), norms, the weights a family reads directly (the sparse FFN's), a
memory's compressors, biases, buffers. Each family's and memory kind's spec says which of its
weights are int8 (``int8_weights``); the model adds its own linears (ALBERT's projections, an
untied output layer, seq2seq cross-attention and an encoder's own factorized table, retrieval's
neighbour encoder and CCA). The sum is exactly the tensor data of the saved file
(``compress.store``), whose JSON header comes on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsearch.config import ArchConfig
from archsearch.costs.analytic import analytic_costs
from archsearch.costs.convention import CountingConvention
from archsearch.costs.peak_bytes import buffer_bytes
from archsearch.families import BlockContext, attention_spec, ffn_spec, memory_spec
from archsearch.families.cross import cross_attention_weights
from archsearch.families.retrieval import cca_int8, encoder_int8

F32 = 4
PER_TENSOR = 8  # a float32 scale and an int32 zero point per int8 tensor


@dataclass(frozen=True)
class Int8Storage:
    int8_elements: int  # weights stored as int8
    int8_tensors: int  # tensors carrying a scale and a zero point
    float_params: int  # parameters left in float32
    buffer_bytes: int  # float32 buffers (random features, rotations)

    @property
    def bytes(self) -> int:
        return (
            self.int8_elements
            + PER_TENSOR * self.int8_tensors
            + F32 * self.float_params
            + self.buffer_bytes
        )


def int8_storage(config: ArchConfig) -> Int8Storage:
    """Elements and tensors of ``config``'s model that dynamic int8 quantization stores as int8."""
    d, e = config.d_model, config.embedding_width
    parts = [memory_spec(config.memory).int8_weights(config), encoder_int8(config)]
    if e != d:  # ALBERT's embedding and output projections
        parts.append((2 * e * d, 2))
    if not config.tie_embeddings:  # an output layer of its own (a tied one stays float)
        parts.append((e * config.vocab_size, 1))
    stacks = [(config.layers, True, False)]
    if config.task == "seq2seq":
        stacks.append((config.encoder_layers, False, True))
        source = config.encoder_width
        source_table = config.embed_dim if config.embed_dim is not None else source
        if source != d and source_table != source:  # the encoder's own table, factorized
            parts.append((source_table * source, 1))
    for layers, causal, encoder in stacks:
        for index, layer in enumerate(layers):
            if index and config.share_layers:
                break  # one block, repeated
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            parts.append(attention_spec(layer.attention).int8_weights(ctx))
            parts.append(ffn_spec(layer.ffn).int8_weights(ctx))
            if config.task == "seq2seq" and not encoder:
                parts.append((cross_attention_weights(ctx), 4))
            if not encoder:
                parts.append(cca_int8(config, layer))
    elements = sum(count for count, _ in parts)
    tensors = sum(number for _, number in parts)
    params = analytic_costs(config, CountingConvention()).params
    return Int8Storage(elements, tensors, params - elements, buffer_bytes(config))


def int8_weight_bytes(config: ArchConfig) -> int:
    """Bytes of tensor data in ``config``'s dynamic-int8 file (``weight_bytes_int8``)."""
    return int8_storage(config).bytes
