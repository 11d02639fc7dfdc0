"""Recurrent memory across consecutive segments (Transformer-XL, compressive memory).

The language model asks its memory for each layer's extra keys (``context``) and hands it each
layer's input hidden states after the segment (``update``). State is a tuple with one entry per
layer; no gradient flows into it (Transformer-XL's stop-gradient).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archsearch.config import ArchConfig


class NoMemory(nn.Module):
    """Models without recurrence: no extra keys, no state."""

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        return None

    def update(self, state: Any, layer: int, hidden: torch.Tensor) -> Any:
        return None

    def finish(self, layer_states: list[Any]) -> Any:
        return None


class XLMemory(nn.Module):
    """Transformer-XL: each layer also attends to the last ``mem_len`` inputs it saw."""

    def __init__(self, mem_len: int):
        super().__init__()
        self.mem_len = mem_len

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        return None if state is None else state[layer]

    def update(self, state: Any, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        previous = self.context(state, layer)
        joined = hidden.detach() if previous is None else torch.cat((previous, hidden.detach()), 1)
        return joined[:, -self.mem_len :]

    def finish(self, layer_states: list[Any]) -> Any:
        return tuple(layer_states)


def build_memory(arch: ArchConfig) -> nn.Module:
    if arch.memory == "none":
        return NoMemory()
    if arch.memory == "xl":
        return XLMemory(arch.mem_len)
    raise NotImplementedError(f"memory '{arch.memory}' has no implementation yet")


def memory_extra_keys(arch: ArchConfig) -> int:
    """Keys each layer's attention sees beyond the segment, once the memory is full."""
    if arch.memory == "none":
        return 0
    if arch.memory == "xl":
        return arch.mem_len
    return arch.mem_len + arch.compress_len


def memory_params(arch: ArchConfig) -> int:
    """Parameters the memory itself owns (none for XL)."""
    return 0


def memory_macs(arch: ArchConfig, tokens: int) -> int:
    """MACs the memory spends per segment of ``tokens`` in steady state (none for XL)."""
    return 0
