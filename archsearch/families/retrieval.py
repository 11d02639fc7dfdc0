"""RETRO-style retrieval (Borgeaud et al. 2022), torch-free side: settings' meaning and costs.

A model with ``retrieval_chunk`` m > 0 splits its input into chunks of m tokens. For every
chunk that has a successor, the evaluator looks up ``retrieval_k`` neighbours in a datastore of
the training split (``archsearch.evaluate.retrieval``): each neighbour is a stored chunk and its
continuation, 2m tokens. The model embeds them with its own token table, encodes each with one
bidirectional block (full attention, dense feed-forward, the first layer's widths) and a layer
norm, and every layer with ``retrieve: true`` adds chunked cross-attention (CCA): the tokens of
chunk c attend to the k x 2m encoded neighbours of chunk c - 1, never to those of their own
chunk, so no output depends on a token after it. The first chunk of a segment reads nothing.

Costs are the model's: the neighbour encoder over R x k sequences of 2m tokens and CCA over R
chunks of m queries (the last, partial chunk padded to m, as the module computes it), where
R = ceil(T / m) - 1 chunks have a successor. The nearest-neighbour search runs in the
evaluator, outside the model: its cost grows with the datastore, not the architecture, so it is
not in the MACs (``benchmarks/retrieval_time.py`` times it per chunk).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, cast

from archsearch.families.base import BlockContext
from archsearch.families.cross import (
    cross_attention_macs,
    cross_attention_params,
    cross_attention_weights,
)
from archsearch.families.registry import attention_spec, ffn_spec

if TYPE_CHECKING:
    from archsearch.config import ArchConfig, LayerConfig


# What the neighbour encoder's block takes from layer 0.
ENCODER_KEPT = ("heads", "attn_dim", "ffn_dim", "ffn_ratio", "activation")


def retrieves(arch: ArchConfig) -> bool:
    """Whether the model reads neighbours at all (a chunk size and a retrieving layer)."""
    return arch.retrieval_chunk > 0 and any(layer.retrieve for layer in arch.layers)


def retrieved_chunks(arch: ArchConfig, tokens: int) -> int:
    """R: chunks of a ``tokens``-long input that have a successor to read their neighbours."""
    m = arch.retrieval_chunk
    return max(0, -(-tokens // m) - 1)


def encoder_layer(arch: ArchConfig) -> LayerConfig:
    """The neighbour encoder's block: full attention and a dense FFN at layer 0's widths (every
    other setting at its default; built from layer 0 so that this module needs no config)."""
    first = cast(Any, arch.layers[0])  # a dataclass made at import time (config.py)
    defaults = {f.name: f.default for f in fields(first) if f.name not in ENCODER_KEPT}
    return cast("LayerConfig", replace(first, **{**defaults, "attention": "full", "ffn": "dense"}))


def _encoder_context(arch: ArchConfig) -> BlockContext:
    return BlockContext(layer=encoder_layer(arch), arch=arch, causal=False, encoder=True)


def _cca_context(arch: ArchConfig, layer: LayerConfig) -> BlockContext:
    """CCA is a cross-attention of the decoder layer (its heads; one source: the neighbours)."""
    return BlockContext(layer=layer, arch=arch, causal=True, encoder=False)


def encoder_params(arch: ArchConfig) -> int:
    """The encoder block (two norms, attention, FFN) and its final norm; the token table is the
    model's own."""
    if not retrieves(arch):
        return 0
    ctx = _encoder_context(arch)
    d = arch.d_model
    block = 4 * d + attention_spec("full").params(ctx) + ffn_spec("dense").params(ctx)
    return block + 2 * d


def cca_params(arch: ArchConfig, layer: LayerConfig) -> int:
    """One retrieving layer's CCA: its norm and q, k, v, out projections."""
    if not (arch.retrieval_chunk > 0 and layer.retrieve):
        return 0
    return 2 * arch.d_model + cross_attention_params(_cca_context(arch, layer))


def encoder_int8(arch: ArchConfig) -> tuple[int, int]:
    """(elements, tensors) of the neighbour encoder that ``compress --int8`` stores as int8:
    its attention's and FFN's weights (norms and biases stay float)."""
    if not retrieves(arch):
        return 0, 0
    ctx = _encoder_context(arch)
    attention, attention_tensors = attention_spec("full").int8_weights(ctx)
    ffn, ffn_tensors = ffn_spec("dense").int8_weights(ctx)
    return attention + ffn, attention_tensors + ffn_tensors


def cca_int8(arch: ArchConfig, layer: LayerConfig) -> tuple[int, int]:
    """One retrieving layer's CCA: its q, k, v and out weights as int8."""
    if not (arch.retrieval_chunk > 0 and layer.retrieve):
        return 0, 0
    return cross_attention_weights(_cca_context(arch, layer)), 4


def encoder_macs(arch: ArchConfig, tokens: int) -> int:
    """R x k neighbour sequences of 2m tokens through the encoder block (and the factorized
    embedding's projection, when there is one)."""
    if not retrieves(arch):
        return 0
    sequences = retrieved_chunks(arch, tokens) * arch.retrieval_k
    n = 2 * arch.retrieval_chunk
    ctx = _encoder_context(arch)
    per = attention_spec("full").macs(ctx, n, 0) + ffn_spec("dense").macs(ctx, n, 0)
    if arch.embedding_width != arch.d_model:
        per += n * arch.embedding_width * arch.d_model
    return sequences * per


def cca_macs(arch: ArchConfig, layer: LayerConfig, tokens: int) -> int:
    """R chunks of m queries (padded) over k x 2m encoded neighbours each."""
    if not (retrieves(arch) and layer.retrieve):
        return 0
    m = arch.retrieval_chunk
    keys = arch.retrieval_k * 2 * m
    return retrieved_chunks(arch, tokens) * cross_attention_macs(_cca_context(arch, layer), m, keys)
