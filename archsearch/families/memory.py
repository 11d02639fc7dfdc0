"""Recurrent memory across segments (``ArchConfig.memory``): none, Transformer-XL, compressive,
infinity-former.

The analytic side only: keys each layer sees beyond its segment, parameters and MACs of the
memory itself. The modules are ``archsearch.models.memory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archsearch.families.activations import F32
from archsearch.families.base import MemorySpec
from archsearch.families.infinity import (
    infinity_int8,
    infinity_keys,
    infinity_largest,
    infinity_macs,
    infinity_params,
    infinity_read_bytes,
    infinity_rows,
    infinity_update,
)

if TYPE_CHECKING:
    from archsearch.config import ArchConfig


def _none_keys(arch: ArchConfig) -> int:
    return 0


def _none_params(arch: ArchConfig) -> int:
    return 0


def _none_macs(arch: ArchConfig, tokens: int) -> int:
    return 0


def _xl_keys(arch: ArchConfig) -> int:
    return arch.mem_len


def compressive_keys(arch: ArchConfig) -> int:
    """``compress_len + mem_len`` at a segment that finds the memory holding exactly ``mem_len``
    states; up to ``compress_rate - 1`` pending leftovers can add keys."""
    return arch.mem_len + arch.compress_len


def compressive_params(arch: ArchConfig) -> int:
    """A conv compressor per layer (none for mean pooling)."""
    if arch.compress_fn == "conv":
        d = arch.d_model
        return arch.n_layers * (d * d * arch.compress_rate + d)
    return 0


def compressive_macs(arch: ArchConfig, tokens: int) -> int:
    """Steady state: the segment evicts ``tokens`` states, ``tokens // compress_rate`` whole
    groups (at most ``compress_len`` are kept and compressed). The conv makes ``d * d * rate``
    MACs per slot, every layer; mean pooling counts none (element-wise), as does the
    training-only reconstruction loss (like the backward pass)."""
    if arch.compress_fn != "conv":
        return 0
    slots = min(tokens // arch.compress_rate, arch.compress_len)
    d = arch.d_model
    return arch.n_layers * slots * d * d * arch.compress_rate


def xl_update(arch: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """Each layer keeps a view of ``cat(memory, x)``: the whole concatenation stays alive."""
    return batch * (arch.mem_len + tokens) * arch.d_model * F32, 0


def compressive_update(arch: ArchConfig, batch: int, tokens: int) -> tuple[int, int]:
    """XL's concatenation, plus the compressed slots (old and new) and, while compressing, the
    new slots and (mean pooling) the pooled copy of the evicted states."""
    d = arch.d_model
    joined = batch * (arch.mem_len + tokens) * d * F32
    groups = tokens // arch.compress_rate
    kept = min(groups, arch.compress_len)
    slots = batch * kept * d * F32
    compressed = batch * (arch.compress_len + kept) * d * F32
    pooled = batch * kept * arch.compress_rate * d * F32 if arch.compress_fn == "mean" else 0
    return joined + compressed, pooled + slots


def compressive_training(arch: ArchConfig, batch: int, tokens: int) -> int:
    """The conv compressor's reconstruction loss, every layer: slots, two attention outputs and
    a log-sum-exp (none for mean pooling, or when nothing is compressed)."""
    if arch.compress_fn != "conv":
        return 0
    kept = min(tokens // arch.compress_rate, arch.compress_len)
    if not kept:
        return 0
    bt = batch * tokens
    d = arch.d_model
    return arch.n_layers * (batch * kept * d * F32 + 3 * bt * d * F32 + bt * F32)


def compressive_largest(arch: ArchConfig) -> int:
    """A conv compressor's kernel: [d, d, compress_rate]."""
    return arch.d_model * arch.d_model * arch.compress_rate if arch.compress_fn == "conv" else 0


SPECS = (
    MemorySpec(
        name="none",
        extra_keys=_none_keys,
        params=_none_params,
        macs=_none_macs,
        implementation="archsearch.models.memory:NoMemory",
    ),
    MemorySpec(
        name="xl",
        extra_keys=_xl_keys,
        params=_none_params,
        macs=_none_macs,
        update_bytes=xl_update,
        implementation="archsearch.models.memory:XLMemory",
        examples={
            "tests": {"memory": "xl", "mem_len": 16},
            "calibration": {"memory": "xl", "mem_len": 64},
            "benchmark": {"memory": "xl", "mem_len": 32},
        },
    ),
    MemorySpec(
        name="compressive",
        extra_keys=compressive_keys,
        params=compressive_params,
        macs=compressive_macs,
        update_bytes=compressive_update,
        implementation="archsearch.models.memory:CompressiveMemory",
        context_copies=2,  # cat(compressed, memory), normalised
        training_bytes=compressive_training,
        largest_weight=compressive_largest,
        examples={
            "tests": {
                "memory": "compressive",
                "mem_len": 16,
                "compress_len": 4,
                "compress_rate": 2,
                "compress_fn": "conv",
            },
            "calibration": {
                "memory": "compressive",
                "mem_len": 64,
                "compress_len": 16,
                "compress_rate": 4,
                "compress_fn": "conv",
            },
            "benchmark": {"memory": "compressive", "mem_len": 32, "compress_len": 8},
        },
    ),
    MemorySpec(
        name="infinity",
        extra_keys=infinity_keys,
        params=infinity_params,
        macs=infinity_macs,
        update_bytes=infinity_update,
        implementation="archsearch.models.infinity:InfinityMemory",
        largest_weight=infinity_largest,
        state_rows=infinity_rows,
        read_bytes=infinity_read_bytes,
        int8_weights=infinity_int8,
        examples={
            "tests": {"memory": "infinity", "mem_len": 16, "ltm_basis": 8, "ltm_samples": 8},
            "calibration": {
                "memory": "infinity",
                "mem_len": 64,
                "ltm_basis": 32,
                "ltm_samples": 32,
            },
            "benchmark": {"memory": "infinity", "mem_len": 32, "ltm_basis": 16, "ltm_samples": 16},
        },
    ),
)
