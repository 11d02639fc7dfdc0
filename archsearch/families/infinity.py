"""The infinity-former's continuous long-term memory (Martins et al. 2022), torch-free side.

Each layer keeps ``ltm_basis`` coefficient vectors: the past hidden states, placed at positions
in [0, 1], fitted by that many Gaussian radial basis functions (ridge regression). Attention
reads the signal through a Gaussian density per query and head (mean and width computed from
the query) evaluated at ``ltm_samples`` fixed points. A short-term memory of the last
``mem_len`` states (Transformer-XL's) sits in front of it, as in the paper's language models:
states leaving it are folded into the coefficients. With ``mem_len`` 0 there is no short-term
memory, the segment itself is folded in, and the read needs nothing of the layer's attention,
so it mixes with every attention family.

Nothing here grows with the past: the read spends ``ltm_samples`` keys, the update folds the
old coefficients and the evicted states through one fixed matrix. The fit itself (the ridge
solution, a function of the lengths only) is a constant computed once per segment length, like a
mask, and counted as none; the MACs are the matmuls the module runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.families.activations import F32, ActivationBytes

if TYPE_CHECKING:
    from archsearch.config import ArchConfig, LayerConfig

RIDGE = 0.1  # the ridge penalty of the fit (basis values are in [0, 1])


def infinity_keys(arch: ArchConfig) -> int:
    """The short-term memory; the long-term one is read apart, not as keys."""
    return arch.mem_len


def infinity_rows(arch: ArchConfig) -> int:
    """State per layer: the short-term memory and the coefficients."""
    return arch.mem_len + arch.ltm_basis


def _layer_params(arch: ArchConfig, layer: LayerConfig) -> int:
    """Query, key, value and output projections (no biases), the signal's layer norm, and the
    per-head map from the sample scores to the density's mean and width (with its bias)."""
    d, a, heads = arch.d_model, layer.qkv_dim(arch.d_model), layer.heads
    return 4 * d * a + 2 * d + heads * arch.ltm_samples * 2 + heads * 2


def infinity_params(arch: ArchConfig) -> int:
    return sum(_layer_params(arch, layer) for layer in arch.layers)


def read_macs(arch: ArchConfig, layer: LayerConfig, tokens: int) -> int:
    """One layer's read: the signal at the sample points (S x N x d), its keys and values,
    the queries, scores over the S points, the mean and width, the weighted values and the
    output projection."""
    d, a, heads = arch.d_model, layer.qkv_dim(arch.d_model), layer.heads
    s, n = arch.ltm_samples, arch.ltm_basis
    return (
        s * n * d + 2 * s * d * a + 2 * tokens * d * a + 2 * tokens * s * a + 2 * heads * tokens * s
    )


def update_macs(arch: ArchConfig, tokens: int) -> int:
    """One layer's refit in steady state: ``tokens`` states leave the short-term memory and
    ``[N, N + tokens]`` folds them with the old coefficients."""
    n = arch.ltm_basis
    return n * (n + tokens) * arch.d_model


def infinity_int8(arch: ArchConfig) -> tuple[int, int]:
    """Each layer's query, key, value and output projections (the placement stays float)."""
    d = arch.d_model
    return sum(4 * d * layer.qkv_dim(d) for layer in arch.layers), 4 * arch.n_layers


def infinity_macs(arch: ArchConfig, tokens: int) -> int:
    return sum(read_macs(arch, layer, tokens) + update_macs(arch, tokens) for layer in arch.layers)


def infinity_update(arch: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """XL's concatenation (the short-term memory is a view of it; none without one) and the
    new coefficients; while refitting, cat(coefficients, evicted) and, without a short-term
    memory, the segment's copy cat(empty memory, x)."""
    d, n = arch.d_model, arch.ltm_basis
    joined = batch * (arch.mem_len + tokens) * d * F32
    coefficients = batch * n * d * F32
    working = batch * (n + tokens) * d * F32
    if not arch.mem_len:
        return coefficients, working + joined
    return joined + coefficients, working


def infinity_read_bytes(
    arch: ArchConfig, layer: LayerConfig, batch: int, tokens: int
) -> ActivationBytes:
    """One layer's read, operator by operator as ``ContinuousRead`` runs (float32, views
    excluded; the queries' input is the block's normalised x, counted by the block).

    Kept for backward: the signal and its layer norm (with statistics), the head-split copies
    of q, k and v, the scores, the (mean, width) pair and the broadcast map to it, the mean, the
    width, three [B, H, T, S] grids of the density (difference, ratio, softmax) and the merged
    read. Inference peak: the signal, q, k, v and the scores stay referenced to the end, with
    two more grids while the density is formed, or the density, merged read and output.
    ``transient`` here is the backward's: two gradient grids of the density (costs.peak_bytes adds
    them to the start of backward, as if nothing were freed yet)."""
    d, a, heads = arch.d_model, layer.qkv_dim(arch.d_model), layer.heads
    s, n = arch.ltm_samples, arch.ltm_basis
    signal = batch * s * d * F32
    kv = batch * s * a * F32  # one of k, v
    q = batch * tokens * a * F32
    grid = batch * heads * tokens * s * F32  # scores, densities
    small = batch * heads * tokens * F32  # one of mean, width (the pair is two)
    saved = 2 * signal + 2 * batch * s * F32 + q + 2 * kv + batch * heads * s * 2 * F32
    saved += 4 * grid + 4 * small + q  # ... and the merged read (width a)
    constants = s * n * F32 + s * F32  # the basis at the points, the points
    held = constants + signal + 2 * kv + q + grid + 4 * small
    out = batch * tokens * d * F32
    peak = held + max(2 * grid, grid + q + out, q + kv - grid)
    # backward through the density: two gradient grids while (nearly) all that is saved is alive
    return ActivationBytes(saved=saved, peak=peak, transient=2 * grid)


def infinity_largest(arch: ArchConfig) -> int:
    return max(arch.d_model * layer.qkv_dim(arch.d_model) for layer in arch.layers)
