"""Analytic peak bytes: inference, generation and training, from the config alone.

The metrics keep their public names (``inference_memory``, ``generation_memory``,
``train_memory`` in profiles and studies); among modules, ``memory`` means recurrent memory
(``families/memory.py``, ``models/memory.py``), hence this module's name.

Three modes, each for ``batch`` sequences of ``tokens`` (float32 throughout):

- **inference**: one forward over whole sequences (no gradients): weights, the recurrent
  memory state read and written (Transformer-XL, compressive), and the largest working set of
  any moment of the forward (``activations`` has each family's, the block adds the residual
  stream around it, the head adds the logits);
- **generation**: an incremental decoder holding ``tokens`` of context: weights, each layer's
  KV cache (or linear-attention state, or window) and one token's activations. The models have
  no incremental API, so this figure is analytic only (``archsearch.costs.latency`` times
  generation by its own incremental path where a family has one);
- **training**: a steady-state AdamW step as ``archsearch.evaluate.train.fit`` takes it: the
  peak of (end of forward: weights, last step's gradients, two AdamW moments, every activation
  kept for backward and the logits), (start of backward: the same without the freed gradients,
  plus the loss gradients) and (optimizer step: weights, gradients, moments and the
  single-tensor AdamW temporaries, three of the largest parameter).

``archsearch.costs.tracker`` measures the same three figures on built models (tests and the
calibration report check them against each other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archsearch.config import ArchConfig, LayerConfig
from archsearch.costs.activations import (
    F32,
    I64,
    ActivationBytes,
    Dims,
    attention_activations,
    ffn_activations,
    has_activations,
)
from archsearch.costs.analytic import analytic_costs
from archsearch.costs.convention import CountingConvention
from archsearch.families import BlockContext, attention_spec, ffn_spec, memory_spec
from archsearch.families.retrieval import encoder_layer, retrieved_chunks, retrieves

ADAMW_MOMENTS = 2
STEP_TEMPORARIES = 3  # single-tensor AdamW: sqrt, bias-corrected denominator, update


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one mode (inference, generation, training) and what they are made of."""

    mode: str  # inference | generation | training (the profile's Workload is batch and tokens)
    batch: int
    tokens: int
    peak: int
    weights: int  # parameters and buffers
    gradients: int = 0
    optimizer: int = 0
    activations: int = 0  # training: kept for backward; inference: working set at the peak
    state: int = 0  # recurrent memory state (read and written) or KV cache for generation
    inputs: int = 0
    phase: str = ""  # which moment sets the peak
    parts: dict[str, int] = field(default_factory=dict)
    approximated: tuple[str, ...] = ()  # families counted with a stand-in's activation bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "batch": self.batch,
            "tokens": self.tokens,
            "peak": self.peak,
            "weights": self.weights,
            "gradients": self.gradients,
            "optimizer": self.optimizer,
            "activations": self.activations,
            "state": self.state,
            "inputs": self.inputs,
            "phase": self.phase,
            "parts": dict(self.parts),
            "approximated": list(self.approximated),
        }


# ---- weights -----------------------------------------------------------------------------------


def parameter_bytes(config: ArchConfig) -> int:
    """Unique float32 parameters (tied and shared weights once)."""
    return analytic_costs(config, CountingConvention()).params * F32


def buffer_bytes(config: ArchConfig) -> int:
    """Float32 buffers each family declares (Performer's random features, LSH's rotations)."""
    total = 0
    for layers, causal, encoder in _owning_stacks(config):
        for layer in layers:
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            total += attention_spec(layer.attention).buffers(ctx)
            total += ffn_spec(layer.ffn).buffers(ctx)
    return total


def largest_parameter(config: ArchConfig) -> int:
    """Bytes of the largest single parameter tensor (what AdamW's per-tensor temporaries span)."""
    d, e, v = config.d_model, config.embedding_width, config.vocab_size
    sizes = [v * e, e * d if e != d else 0]
    source_d = config.encoder_width
    if config.task == "seq2seq" and source_d != d:  # the encoder's own table
        source_e = config.embed_dim if config.embed_dim is not None else source_d
        sizes += [v * source_e, source_e * source_d if source_e != source_d else 0]
    sizes.append(memory_spec(config.memory).largest_weight(config))
    for layers, causal, encoder in _stacks(config):
        for layer in layers:
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            width = ctx.d_model
            a, hidden = layer.qkv_dim(width), layer.hidden_dim(width)
            sizes += [width * a, width * hidden, width * layer.experts]
            if config.task == "seq2seq" and not encoder:
                sizes.append(source_d * a)  # cross-attention's key/value projections
            sizes.append(attention_spec(layer.attention).largest_weight(ctx))
            sizes.append(ffn_spec(layer.ffn).largest_weight(ctx))
    return max(sizes) * F32


# ---- inference ---------------------------------------------------------------------------------


def inference_memory(config: ArchConfig, tokens: int, batch: int = 1) -> MemoryEstimate:
    """Peak bytes of one forward over ``batch`` sequences of ``tokens`` (seq2seq: as many source
    tokens), with recurrent memory full (steady state)."""
    _check_sizes(tokens, batch)
    weights = parameter_bytes(config) + buffer_bytes(config)
    inputs = batch * tokens * I64 * (2 if config.task == "seq2seq" else 1)
    inputs += _neighbour_ids(config, batch, tokens)
    state_in = _state_bytes(config, batch)
    fixed = weights + inputs + state_in
    d = config.d_model
    x = batch * tokens * d * F32
    moments: dict[str, int] = {}
    encoded = 0  # the encoded neighbours, held from the encoder to the end of the decoder
    if retrieves(config):
        moments["retrieval"] = _encoder_peak(config, batch, tokens)
        encoded = _encoded_bytes(config, batch, tokens)
    moments["embedding"] = encoded + _embedding_peak(config, batch, tokens)
    context = encoded
    if config.task == "seq2seq":
        source = batch * tokens * config.encoder_width * F32  # one encoder layer's output
        reads = _reads(config)
        first_kept = config.n_encoder_layers - reads
        for index, layer in enumerate(config.encoder_layers):
            kept = max(0, index - first_kept) * source  # earlier outputs cross-attention reads
            block = _block_peak(config, layer, batch, tokens, encoder=True)
            moments[f"encoder.{index}"] = kept + block
        # the outputs cross-attention reads (pre-norm: normalised while the last is alive)
        context = reads * source
        if config.norm == "pre":
            moments["encoder.norm"] = reads * source + source + source
        moments["source_embedding"] = _embedding_peak(config, batch, tokens, encoder=True)
        moments["embedding"] += context
    written = 0
    for index, layer in enumerate(config.layers):
        write, working = _memory_update(config, batch, tokens)
        block = _block_peak(config, layer, batch, tokens, encoder=False)
        moments[f"layer.{index}"] = context + written + write + max(x + working, block)
        written += write
    moments["head"] = context + written + _head_peak(config, batch, tokens)
    context -= encoded  # what the decoder adds to its moments besides the encoded neighbours
    phase = max(moments, key=lambda k: moments[k])
    return MemoryEstimate(
        mode="inference",
        batch=batch,
        tokens=tokens,
        peak=fixed + moments[phase],
        weights=weights,
        activations=moments[phase] - written,
        state=state_in + written,
        inputs=inputs,
        phase=phase,
        parts={"state_in": state_in, "state_out": written},
        approximated=approximated(config),
    )


def _block_peak(
    config: ArchConfig, layer: LayerConfig, batch: int, tokens: int, *, encoder: bool
) -> int:
    """Most bytes held at once while a block runs, its input x (held by its caller) included."""
    ctx = BlockContext(layer=layer, arch=config, causal=not encoder, encoder=encoder)
    d = ctx.d_model
    x = batch * tokens * d * F32
    extra = 0 if encoder else _extra_keys(config)
    dims = _dims(config, layer, batch, tokens, extra, encoder=encoder)
    attention = attention_activations(ctx, dims).peak
    copies = memory_spec(config.memory).context_copies
    ffn = ffn_activations(ctx, batch, tokens).peak
    cross = 0
    if config.task == "seq2seq" and not encoder:
        cross = _cross_activations(config, layer, batch, tokens).peak
    if config.norm == "post":  # x -> norm(x + f(x)): no normalised copy beside the stream
        # the memory is read as it is (concatenated further, compressive)
        memory_context = batch * extra * d * F32 * (copies - 1) if extra else 0
        moments = [x + memory_context + attention, x + x + x + x]  # y, x + y, its norm
        if cross:
            moments.append(x + x + cross)
        moments.append(x + x + ffn)
        return max(moments)
    norm = x  # layer norm output (its statistics are dropped under no_grad)
    memory_context = 0
    if extra:  # the memory, normalised like the segment (and concatenated, compressive)
        memory_context = batch * extra * d * F32 * copies
    moments = [x + norm + memory_context + attention, x + norm + x + x + x]  # ... + x_out
    read = _read_bytes(config, layer, batch, tokens) if not encoder else None
    if read is not None:  # after attention: its output (x) is held while the memory is read
        moments.append(x + norm + x + read.peak)
    if cross:
        moments.append(x + norm + x + norm + cross)
    if not encoder and layer.retrieve and retrieves(config):
        moments.append(x + norm + x + norm + _cca_bytes(config, layer, batch, tokens).peak)
    moments.append(x + norm + x + norm + ffn)
    return max(moments)


def _embedding_peak(config: ArchConfig, batch: int, tokens: int, encoder: bool = False) -> int:
    """Lookup and (factorized) projection to the stack's width."""
    d = config.encoder_width if encoder else config.d_model
    e = config.embed_dim if config.embed_dim is not None else d
    lookup = batch * tokens * e * F32
    return lookup + (batch * tokens * d * F32 if e != d else 0)


def _head_peak(config: ArchConfig, batch: int, tokens: int) -> int:
    """Final hidden state, its norm (or projection) and the logits."""
    bt = batch * tokens * F32
    x, logits = bt * config.d_model, bt * config.vocab_size
    if config.norm == "post":  # no final norm: the last block's output goes on as it is
        if config.embedding_width != config.d_model:
            projected = bt * config.embedding_width
            return max(x + projected, projected + logits)
        return x + logits
    if config.embedding_width != config.d_model:
        projected = bt * config.embedding_width
        return max(x + x + projected, x + projected + logits)
    return x + x + logits


def _memory_update(config: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """(new state kept per layer, working bytes while computing it), as the memory's spec
    counts them."""
    return memory_spec(config.memory).update_bytes(config, batch, tokens)


def _state_bytes(config: ArchConfig, batch: int) -> int:
    """Recurrent memory state handed in: every layer's memory full (none without memory)."""
    spec = memory_spec(config.memory)
    rows = spec.extra_keys(config) if spec.state_rows is None else spec.state_rows(config)
    return config.n_layers * batch * rows * config.d_model * F32


def _read_bytes(
    config: ArchConfig, layer: LayerConfig, batch: int, tokens: int
) -> ActivationBytes | None:
    """A memory read beside attention (infinity-former), None for memories that are keys."""
    read = memory_spec(config.memory).read_bytes
    return None if read is None else read(config, layer, batch, tokens)


# ---- training ----------------------------------------------------------------------------------


def training_memory(config: ArchConfig, tokens: int, batch: int = 1) -> MemoryEstimate:
    """Peak bytes of a steady-state AdamW training step over ``batch`` x ``tokens``."""
    _check_sizes(tokens, batch)
    params = parameter_bytes(config)
    buffers = buffer_bytes(config)
    streams = 2 if config.task == "seq2seq" else 1
    inputs = batch * tokens * I64 * (streams + 1)  # tokens (and source) and targets
    inputs += _neighbour_ids(config, batch, tokens)
    state_in = _state_bytes(config, batch)
    written = sum(_memory_update(config, batch, tokens)[0] for _ in config.layers)
    saved, forward = _saved_bytes(config, batch, tokens)
    logits = batch * tokens * config.vocab_size * F32
    fixed = buffers + inputs + state_in + written
    moments = {
        "forward": fixed + params * (2 + ADAMW_MOMENTS) + forward,
        "backward": fixed + params * (1 + ADAMW_MOMENTS) + saved + 2 * logits,
        "step": fixed + params * (2 + ADAMW_MOMENTS) + STEP_TEMPORARIES * largest_parameter(config),
    }
    if retrieves(config):  # CCA's SDPA backward: gradients of q, k, v over k x 2m keys per chunk
        grads = max(_cca_gradients(config, layer, batch, tokens) for layer in config.layers)
        moments["backward.cca"] = moments["backward"] - 2 * logits + grads
    reads = [_read_bytes(config, layer, batch, tokens) for layer in config.layers]
    if any(reads):  # a memory read's backward (infinity-former: the density's gradient grids)
        grads = max(read.transient for read in reads if read is not None)
        moments["backward.read"] = moments["backward"] - 2 * logits + grads
    phase = max(moments, key=lambda k: moments[k])
    return MemoryEstimate(
        mode="training",
        batch=batch,
        tokens=tokens,
        peak=moments[phase],
        weights=params + buffers,
        gradients=params,
        optimizer=params * ADAMW_MOMENTS,
        activations=saved,
        state=state_in + written,
        inputs=inputs,
        phase=phase,
        parts=dict(moments),
        approximated=approximated(config),
    )


def _saved_bytes(config: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """Every tensor autograd keeps from the forward for the backward (the log-softmax output
    included), and the most bytes held during the forward: what is kept so far plus the
    largest module temporary at that point (or the logits at the end)."""
    d = config.d_model
    bt = batch * tokens
    pre = config.norm == "pre"
    total = 0
    if config.embedding_width != d:
        total += bt * config.embedding_width * F32  # the lookup, kept by the projection
    source_d = config.encoder_width
    if config.task == "seq2seq" and source_d != d:  # the encoder's own table
        source_e = config.embed_dim if config.embed_dim is not None else source_d
        total += bt * source_e * F32 if source_e != source_d else 0
    extra = _extra_keys(config)
    busiest = 0
    if retrieves(config):  # the neighbour encoder runs first; its output is kept by every CCA
        kept, transient = _encoder_saved(config, batch, tokens)
        busiest = total + kept + transient
        total += kept + _encoded_bytes(config, batch, tokens)
    for layers, causal, encoder in reversed(_stacks(config)):  # encoder first
        width = source_d if encoder else d
        # layer norm input, mean and rstd (pre-norm: the stream; post-norm: x + f(x))
        norm = bt * width * F32 + 2 * bt * F32
        dropout = bt * width * F32 if config.dropout > 0 else 0  # float keep-mask (CPU)
        total += dropout  # after the embedding
        for layer in layers:
            ctx = BlockContext(layer=layer, arch=config, causal=causal, encoder=encoder)
            keys_extra = 0 if encoder else extra
            dims = _dims(config, layer, batch, tokens, keys_extra, encoder=encoder)
            total += 2 * norm + 2 * dropout
            attention = attention_activations(ctx, dims)
            total += attention.saved
            busiest = max(busiest, total + attention.transient)
            read = None if encoder else _read_bytes(config, layer, batch, tokens)
            if read is not None:
                total += read.saved
            if keys_extra:
                if pre:
                    total += 2 * batch * keys_extra * F32  # statistics of the normalised memory
                # further copies of the memory (compressive: cat(compressed, memory))
                copies = memory_spec(config.memory).context_copies - 1
                total += copies * batch * keys_extra * d * F32
            if config.task == "seq2seq" and not encoder:
                total += norm + _cross_activations(config, layer, batch, tokens).saved + dropout
            if not encoder and layer.retrieve and retrieves(config):
                total += norm + _cca_bytes(config, layer, batch, tokens).saved + dropout
            ffn = ffn_activations(ctx, batch, tokens)
            total += ffn.saved
            busiest = max(busiest, total + ffn.transient)
        if config.task == "seq2seq" and encoder:
            output = bt * source_d * F32  # the last layer's output, kept by cross k, v
            total += output
            if pre:  # the encoder's final norm on each output read; earlier outputs' inputs
                # are kept by the next block's norm already
                total += norm + (_reads(config) - 1) * (output + 2 * bt * F32)
    total += memory_spec(config.memory).training_bytes(config, batch, tokens)
    # the last hidden state, kept by the logits layer (pre-norm: the final norm's output)
    total += (norm if pre else 0) + bt * d * F32
    if config.embedding_width != d:
        total += bt * config.embedding_width * F32
    logits = bt * config.vocab_size * F32
    total += logits  # log-softmax output
    return total, max(busiest, total + logits)


# ---- generation --------------------------------------------------------------------------------


def generation_memory(config: ArchConfig, context: int, batch: int = 1) -> MemoryEstimate:
    """Peak bytes of an incremental decoder holding ``context`` tokens per sequence: weights,
    every layer's cache (keys/values, window, or linear-attention state), the recurrent memory,
    and one token's activations."""
    _check_sizes(context, batch)
    weights = parameter_bytes(config) + buffer_bytes(config)
    extra = _extra_keys(config)
    cache = 0
    for layer in config.layers:
        ctx = BlockContext(layer=layer, arch=config, causal=True, encoder=False)
        dims = _dims(config, layer, batch, context, extra)
        cache += attention_activations(ctx, dims).cache
    if config.task == "seq2seq":
        for layer in config.layers:  # cross-attention keys and values over the source
            cache += _cross_activations(config, layer, batch, context).cache
    state = _state_bytes(config, batch)
    step = inference_memory(config.replace(memory="none", mem_len=0), 1, batch)
    one_token = step.peak - step.weights - step.inputs
    return MemoryEstimate(
        mode="generation",
        batch=batch,
        tokens=context,
        peak=weights + cache + state + one_token,
        weights=weights,
        activations=one_token,
        state=cache + state,
        phase="decode",
        parts={"cache": cache, "memory_state": state},
        approximated=approximated(config),
    )


def approximated(config: ArchConfig) -> tuple[str, ...]:
    """Families in ``config`` without activation bytes of their own (counted as full / dense)."""
    missing = set()
    for layers, _, _ in _stacks(config):
        for layer in layers:
            if not has_activations("attention", layer.attention):
                missing.add(f"attention={layer.attention}")
            if not has_activations("ffn", layer.ffn):
                missing.add(f"ffn={layer.ffn}")
    return tuple(sorted(missing))


# ---- retrieval -----------------------------------------------------------------------------------


def _neighbour_ids(config: ArchConfig, batch: int, tokens: int) -> int:
    """The neighbours' token ids handed to a retrieving model: [B, R, k, 2m] int64."""
    if not retrieves(config):
        return 0
    rows = batch * retrieved_chunks(config, tokens) * config.retrieval_k
    return rows * 2 * config.retrieval_chunk * I64


def _encoder_shape(config: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """(sequences, tokens each) the neighbour encoder runs over: B x R x k of 2m."""
    return batch * retrieved_chunks(config, tokens) * config.retrieval_k, 2 * config.retrieval_chunk


def _encoded_bytes(config: ArchConfig, batch: int, tokens: int) -> int:
    rows, n = _encoder_shape(config, batch, tokens)
    return rows * n * config.d_model * F32


def _encoder_peak(config: ArchConfig, batch: int, tokens: int) -> int:
    """The encoder's inference moments: the neighbours' embedding, its block, then the block's
    output and its norm (the norm's output is what the decoder keeps)."""
    rows, n = _encoder_shape(config, batch, tokens)
    if not rows:
        return 0
    block = _block_peak(config, encoder_layer(config), rows, n, encoder=True)
    return max(_embedding_peak(config, rows, n), block, 2 * _encoded_bytes(config, batch, tokens))


def _encoder_saved(config: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """(kept for backward, the FFN's transient): the factorized lookup, the embedding dropout's
    mask, the block as a decoder layer keeps it and the final norm's input and statistics."""
    rows, n = _encoder_shape(config, batch, tokens)
    if not rows:
        return 0, 0
    d, bt = config.d_model, rows * n
    norm = bt * d * F32 + 2 * bt * F32
    dropout = bt * d * F32 if config.dropout > 0 else 0
    layer = encoder_layer(config)
    ctx = BlockContext(layer=layer, arch=config, causal=False, encoder=True)
    kept = bt * config.embedding_width * F32 if config.embedding_width != d else 0
    kept += dropout + 2 * norm + 2 * dropout
    kept += attention_activations(ctx, _dims(config, layer, rows, n, 0)).saved
    ffn = ffn_activations(ctx, rows, n)
    return kept + ffn.saved + norm, ffn.transient


def _cca_bytes(config: ArchConfig, layer: LayerConfig, batch: int, tokens: int) -> ActivationBytes:
    """One layer's chunked cross-attention (``ChunkedCrossAttention``), its norm aside.

    Kept: the padded queries' input, q, k, v, SDPA's output and log-sum-exp (merging heads is
    a view); the encoded neighbours k and v read are counted once for all layers. Peak: the
    padded input, q, k, v, SDPA's output and the output projection, or, at the end, the padded
    input, the projection, the zeros for chunk 0 and the concatenated result."""
    d, a, heads = config.d_model, layer.qkv_dim(config.d_model), layer.heads
    r, m = retrieved_chunks(config, tokens), config.retrieval_chunk
    if not r:
        return ActivationBytes(0, 0)
    keys = config.retrieval_k * 2 * m
    padded = batch * r * m * d * F32
    q = batch * r * m * a * F32
    kv = 2 * batch * r * keys * a * F32
    out = q + batch * heads * r * m * F32
    saved = padded + q + kv + out
    whole = batch * tokens * d * F32
    peak = max(padded + q + kv + out + padded, padded + padded + batch * m * d * F32 + whole)
    return ActivationBytes(saved, peak)


def _cca_gradients(config: ArchConfig, layer: LayerConfig, batch: int, tokens: int) -> int:
    """The gradients of q, k and v CCA's SDPA backward allocates while (nearly) everything
    saved is alive: counted as if nothing else were freed yet, a few percent high."""
    if not (layer.retrieve and retrieves(config)):
        return 0
    a, r = layer.qkv_dim(config.d_model), retrieved_chunks(config, tokens)
    m = config.retrieval_chunk
    return batch * r * (m + 2 * config.retrieval_k * 2 * m) * a * F32


# ---- helpers -----------------------------------------------------------------------------------


def _cross_activations(
    config: ArchConfig, layer: LayerConfig, batch: int, tokens: int
) -> ActivationBytes:
    """Cross-attention: full, non-causal, no rotary; keys and values over the encoder outputs
    it reads (``cross_layers`` x source tokens, joined into one new tensor when more than one),
    projected from the encoder's width."""
    d, a = config.d_model, layer.qkv_dim(config.d_model)
    heads = layer.cross_head_count
    dims = Dims(batch, tokens, layer.cross_layers * tokens, d, a, heads)
    joined = dims.bk(config.encoder_width) if layer.cross_layers > 1 else 0
    qkv = dims.bt(a) + 2 * dims.bk(a)
    out = dims.bt(a) + batch * heads * tokens * F32
    # SDPA lays its output out like the (head-split) query, so merging heads is a view
    saved = dims.bt(d) + joined + qkv + out
    peak = joined + qkv + out + dims.bt(d)
    return ActivationBytes(saved, peak, 2 * dims.bk(a))


def _dims(
    config: ArchConfig,
    layer: LayerConfig,
    batch: int,
    tokens: int,
    extra: int,
    *,
    encoder: bool = False,
) -> Dims:
    d = config.encoder_width if encoder else config.d_model
    return Dims(batch, tokens, tokens + extra, d, layer.qkv_dim(d), layer.heads)


def _reads(config: ArchConfig) -> int:
    """Encoder layers whose outputs the decoder's cross-attention reads (the last ones)."""
    return max(layer.cross_layers for layer in config.layers)


def _stacks(config: ArchConfig) -> list[tuple[tuple[LayerConfig, ...], bool, bool]]:
    stacks = [(config.layers, True, False)]
    if config.task == "seq2seq":
        stacks.append((config.encoder_layers, False, True))
    return stacks


def _owning_stacks(config: ArchConfig) -> list[tuple[tuple[LayerConfig, ...], bool, bool]]:
    """Layers that own weights and buffers: one per stack when layers are shared."""
    return [
        (layers[:1] if config.share_layers else layers, causal, encoder)
        for layers, causal, encoder in _stacks(config)
    ]


def _extra_keys(config: ArchConfig) -> int:
    """Keys each decoder layer sees beyond its segment (recurrent memory, full)."""
    return memory_spec(config.memory).extra_keys(config)


def _check_sizes(tokens: int, batch: int) -> None:
    from archsearch.checks import check_count

    check_count("tokens", tokens)
    check_count("batch_size", batch)


__all__ = [
    "MemoryEstimate",
    "approximated",
    "buffer_bytes",
    "generation_memory",
    "inference_memory",
    "largest_parameter",
    "parameter_bytes",
    "training_memory",
]
