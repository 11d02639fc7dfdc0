"""Recurrent memory across consecutive segments (Transformer-XL, compressive memory; the
infinity-former's is ``archsearch.models.infinity``).

The language model asks its memory for each layer's extra keys (``context``) and for a read
beside attention (``reader``; None for these kinds), and hands it each layer's input hidden
states (``update``), which returns that layer's new state and an auxiliary loss (zero unless
the memory has something to train). State is a tuple with one entry per
layer; no gradient flows into it (Transformer-XL's stop-gradient).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig
from archsearch.families import memory_spec


def summary_and_recent(
    state: Any, layer: int, hidden: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For a memory whose layer state is (a long-term summary, the recent hidden states):
    the summary, empty [B, 0, D] before the first segment, and the recent states with this
    segment's ``hidden`` appended."""
    if state is None:
        return hidden.new_zeros(hidden.shape[0], 0, hidden.shape[2]), hidden
    summary, recent = state[layer]
    return summary, torch.cat((recent, hidden), 1)


class NoMemory(nn.Module):
    """Models without recurrence: no extra keys, no state."""

    @classmethod
    def for_arch(cls, arch: ArchConfig) -> NoMemory:
        return cls()

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        return None

    def reader(self, state: Any, layer: int) -> Any:
        return None

    def update(self, state: Any, layer: int, hidden: torch.Tensor) -> tuple[Any, torch.Tensor]:
        return None, hidden.new_zeros(())

    def finish(self, layer_states: list[Any]) -> Any:
        return None


class XLMemory(nn.Module):
    """Transformer-XL: each layer also attends to the last ``mem_len`` inputs it saw."""

    def __init__(self, mem_len: int):
        super().__init__()
        self.mem_len = mem_len

    @classmethod
    def for_arch(cls, arch: ArchConfig) -> XLMemory:
        return cls(arch.mem_len)

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        return None if state is None else state[layer]

    def reader(self, state: Any, layer: int) -> Any:
        return None

    def update(
        self, state: Any, layer: int, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        previous = self.context(state, layer)
        joined = hidden.detach() if previous is None else torch.cat((previous, hidden.detach()), 1)
        return joined[:, -self.mem_len :], hidden.new_zeros(())

    def finish(self, layer_states: list[Any]) -> Any:
        return tuple(layer_states)


class CompressiveMemory(nn.Module):
    """Compressive Transformer (Rae et al. 2019): XL memory plus a FIFO of compressed slots.

    Each layer's state is ``(compressed [B, <=compress_len, D], memory [B, M, D])`` and its
    attention keys are ``cat(compressed, memory, x)``. States leaving the memory are compressed
    ``compress_rate`` at a time into one slot each (mean pooling, or a strided Conv1d per layer).

    Leftovers: only whole groups of ``compress_rate`` are evicted; the remainder stays in the
    memory (and is attended) until a full group has gone past ``mem_len``, so nothing is lost and
    the memory holds between ``mem_len`` and ``mem_len + compress_rate - 1`` states once full.
    Groups that would be pushed out of the compressed FIFO in the same step are dropped before
    compression, so no work is spent on slots nobody will see.

    The conv compressor cannot learn from the LM loss (its output is detached into the state),
    so while training it gets the paper's attention-reconstruction loss in a parameter-free form:
    the layer's (detached) input states attend, by plain scaled dot-product, once over the
    evicted states and once over their compressed slots; the MSE between the two is returned
    as the auxiliary loss. Only the compressor receives its gradient.
    """

    @classmethod
    def for_arch(cls, arch: ArchConfig) -> CompressiveMemory:
        return cls(arch)

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.mem_len = arch.mem_len
        self.compress_len = arch.compress_len
        self.rate = arch.compress_rate
        self.compressors: nn.ModuleList | None = None
        if arch.compress_fn == "conv":
            d, rate = arch.d_model, arch.compress_rate
            self.compressors = nn.ModuleList(
                nn.Conv1d(d, d, kernel_size=rate, stride=rate) for _ in range(arch.n_layers)
            )
            for conv in self.compressors:
                _init_as_mean(conv)

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        if state is None:
            return None
        compressed, memory = state[layer]
        return torch.cat((compressed, memory), 1)

    def reader(self, state: Any, layer: int) -> Any:
        return None

    def update(
        self, state: Any, layer: int, hidden: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        hidden = hidden.detach()
        compressed, joined = summary_and_recent(state, layer, hidden)
        groups = max(0, joined.shape[1] - self.mem_len) // self.rate
        evicted, kept = joined[:, : groups * self.rate], joined[:, groups * self.rate :]
        surviving = min(groups, self.compress_len)
        aux = hidden.new_zeros(())
        if surviving:
            old = evicted[:, (groups - surviving) * self.rate :]
            slots, aux = self._compress(layer, old, hidden)
            compressed = torch.cat((compressed, slots.detach()), 1)[:, -self.compress_len :]
        return (compressed, kept), aux

    def finish(self, layer_states: list[Any]) -> Any:
        return tuple(layer_states)

    def _compress(
        self, layer: int, old: torch.Tensor, queries: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots [B, G, D] for ``old`` [B, G*rate, D], and the compressor's training loss."""
        b, n, d = old.shape
        if self.compressors is None:
            return old.reshape(b, n // self.rate, self.rate, d).mean(2), queries.new_zeros(())
        slots = self.compressors[layer](old.transpose(1, 2)).transpose(1, 2)
        if not (self.training and torch.is_grad_enabled()):
            return slots, queries.new_zeros(())
        target = F.scaled_dot_product_attention(queries, old, old)
        recon = F.scaled_dot_product_attention(queries, slots, slots)
        return slots, F.mse_loss(recon, target)


def _init_as_mean(conv: nn.Conv1d) -> None:
    """Start as mean pooling, so an untrained compressor is no worse than the 'mean' one."""
    d, _, rate = conv.weight.shape
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[torch.arange(d), torch.arange(d)] = 1.0 / rate
        if conv.bias is not None:
            conv.bias.zero_()


def build_memory(arch: ArchConfig) -> nn.Module:
    """The module the memory kind's spec names (``for_arch``)."""
    return memory_spec(arch.memory).build(arch)


def steady_state(arch: ArchConfig, batch: int = 1) -> Any:
    """A state as found after many segments: every memory exactly full (random contents).

    What costs and latency are quoted for (``memory_extra_keys``, ``memory_macs``); a state of
    zeros would do for counting, random states keep softmax and timings realistic.
    """
    if arch.memory == "none":
        return None
    d = arch.d_model
    if arch.memory == "xl":
        return tuple(torch.randn(batch, arch.mem_len, d) for _ in range(arch.n_layers))
    if arch.memory == "infinity":  # coefficients, short-term memory
        return tuple(
            (torch.randn(batch, arch.ltm_basis, d), torch.randn(batch, arch.mem_len, d))
            for _ in range(arch.n_layers)
        )
    return tuple(
        (torch.randn(batch, arch.compress_len, d), torch.randn(batch, arch.mem_len, d))
        for _ in range(arch.n_layers)
    )


def memory_extra_keys(arch: ArchConfig) -> int:
    """Keys each layer's attention sees beyond the segment, once the memory is full."""
    return memory_spec(arch.memory).extra_keys(arch)


def memory_params(arch: ArchConfig) -> int:
    """Parameters the memory itself owns, all layers: a conv compressor per layer."""
    return memory_spec(arch.memory).params(arch)


def memory_macs(arch: ArchConfig, tokens: int) -> int:
    """MACs the memory spends, all layers, on a segment of ``tokens`` in steady state."""
    return memory_spec(arch.memory).macs(arch, tokens)
