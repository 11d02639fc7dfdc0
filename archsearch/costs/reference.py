"""Measured MACs: PyTorch's FlopCounterMode on a built model, the reference analytic counts are
checked against (in tests and in the calibration report).

On the CPU, ``scaled_dot_product_attention`` dispatches to
``aten._scaled_dot_product_flash_attention_for_cpu``, which has no formula in PyTorch's flop
registry, so the counter silently counts its score MACs as zero. We pass the same formula
PyTorch uses for the GPU kernels for that op.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

_CPU_SDPA = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def counting_mode() -> FlopCounterMode:
    """A FlopCounterMode that also counts CPU fused attention."""
    return FlopCounterMode(display=False, custom_mapping={_CPU_SDPA: _cpu_sdpa_flops})


@torch.no_grad()
def measured_macs(model: torch.nn.Module, *args: Any, **kwargs: Any) -> dict[str, int]:
    """MACs of one forward call: ``{"total": ..., "<module path>": ...}`` (FLOPs / 2)."""
    with counting_mode() as counter:
        model(*args, **kwargs)
    by_module = {
        name: sum(counts.values()) // 2 for name, counts in counter.get_flop_counts().items()
    }
    by_module["total"] = counter.get_total_flops() // 2
    return by_module
