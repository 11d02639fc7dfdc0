"""The infinity-former's continuous long-term memory (Martins et al. 2022).

Each layer's state is ``(coefficients [B, N, D], short-term memory [B, <=M, D])``. The
short-term memory is Transformer-XL's (extra keys of the layer's attention; none when
``mem_len`` is 0, and then the layer's attention may be any family); the states that leave it
are folded into N coefficients of Gaussian radial basis functions: the old signal,
sampled at ``ltm_samples`` points, takes the front of [0, 1], the evicted states the rest, and a
ridge regression fits the coefficients to both. Both steps are linear, so the refit is one fixed
matrix ``[N, N + evicted]`` applied to ``cat(coefficients, evicted)``: its cost is the same
after ten segments or ten thousand.

The read runs beside the layer's attention (its output is added to the attention's): the
signal evaluated at S fixed points gives keys and values; each query and head turns its scores
over those keys into the mean (sigmoid) and width (softplus) of a Gaussian, whose density at
the S points, normalised, weighs the values -- the paper's expectation of the signal under the
density, by the S-point rule. A layer with an empty long-term memory (the first segments)
reads nothing. No gradient reaches the state (stop-gradient, as in XL); the read's own weights
learn through the language-model loss.
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig, LayerConfig
from archsearch.families.infinity import RIDGE
from archsearch.models.memory import summary_and_recent


def _midpoints(count: int) -> np.ndarray:
    return (np.arange(count, dtype=np.float64) + 0.5) / count


def basis_at(positions: np.ndarray, basis: int) -> np.ndarray:
    """``[len(positions), N]``: N Gaussians with centres at the midpoints of N equal cells of
    [0, 1] and a width of one cell."""
    centres = _midpoints(basis)
    return np.exp(-0.5 * ((positions[:, None] - centres[None, :]) * basis) ** 2)


@lru_cache(maxsize=256)
def fit_matrix(basis: int, samples: int, evicted: int, carried: bool) -> np.ndarray:
    """``[N, N + evicted]`` (``[N, evicted]`` with nothing carried): new coefficients from
    ``cat(old coefficients, evicted states)``.

    The L = samples + evicted points sit at the midpoints of L cells of [0, 1], the old
    signal's samples first (older), and ridge regression fits N basis functions to them."""
    old = samples if carried else 0
    design = basis_at(_midpoints(old + evicted), basis)  # [L, N]
    gram = design.T @ design + RIDGE * np.eye(basis)
    fit = np.linalg.solve(gram, design.T)  # [N, L]
    if not carried:
        return fit
    resample = basis_at(_midpoints(samples), basis)  # old signal at S points: [S, N]
    return np.concatenate((fit[:, :old] @ resample, fit[:, old:]), 1)


@lru_cache(maxsize=64)
def sample_matrix(basis: int, samples: int) -> np.ndarray:
    """``[S, N]``: the basis at the read's S sample points."""
    return basis_at(_midpoints(samples), basis)


def _constant(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(array).to(device=like.device, dtype=like.dtype)


class ContinuousRead(nn.Module):
    """One layer's read of its continuous memory through per-query Gaussian densities."""

    def __init__(self, arch: ArchConfig, layer: LayerConfig):
        super().__init__()
        d, width = arch.d_model, layer.qkv_dim(arch.d_model)
        self.heads, self.width = layer.heads, width
        self.basis, self.samples = arch.ltm_basis, arch.ltm_samples
        self.norm = nn.LayerNorm(d)
        self.query = nn.Linear(d, width, bias=False)
        self.key = nn.Linear(d, width, bias=False)
        self.value = nn.Linear(d, width, bias=False)
        self.out = nn.Linear(width, d, bias=False)
        # scores over the S points -> (mean, width) of each head's Gaussian; small weights start
        # every query near the mean 0.5 with a broad density (about the memory's average), yet
        # not at zero, where q and k would get no gradient
        self.place = nn.Parameter(torch.randn(layer.heads, arch.ltm_samples, 2) * 0.02)
        self.place_bias = nn.Parameter(torch.zeros(layer.heads, 1, 2))

    def forward(self, coefficients: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        b, t, _ = h.shape
        s, heads = self.samples, self.heads
        psi = _constant(sample_matrix(self.basis, s), h)  # [S, N]
        signal = self.norm(psi @ coefficients)  # [B, S, D]: the memory at the sample points
        k = self.key(signal).view(b, s, heads, -1).transpose(1, 2)  # [B, H, S, dh]
        v = self.value(signal).view(b, s, heads, -1).transpose(1, 2)
        q = self.query(h).view(b, t, heads, -1).transpose(1, 2)  # [B, H, T, dh]
        scores = q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5  # [B, H, T, S]
        place = scores @ self.place + self.place_bias  # [B, H, T, 2]
        mean = torch.sigmoid(place[..., :1])
        spread = F.softplus(place[..., 1:]) + 1.0 / s
        points = _constant(np.arange(s, dtype=np.float64) + 0.5, h) / s  # [S]
        density = torch.softmax(-0.5 * ((points - mean) / spread) ** 2, -1)  # [B, H, T, S]
        read = (density @ v).transpose(1, 2).reshape(b, t, self.width)
        return self.out(read)


class InfinityMemory(nn.Module):
    """Short-term (XL) memory plus a continuous long-term memory per layer."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.mem_len, self.basis, self.samples = arch.mem_len, arch.ltm_basis, arch.ltm_samples
        self.reads = nn.ModuleList(ContinuousRead(arch, layer) for layer in arch.layers)

    @classmethod
    def for_arch(cls, arch: ArchConfig) -> InfinityMemory:
        return cls(arch)

    def context(self, state: Any, layer: int) -> torch.Tensor | None:
        """The short-term memory's keys (none with mem_len 0: any attention can then run)."""
        return None if state is None or not self.mem_len else state[layer][1]

    def reader(self, state: Any, layer: int) -> Any:
        """``h -> read`` for the block, or None while the long-term memory is empty."""
        if state is None or state[layer][0].shape[1] == 0:
            return None
        return partial(self.reads[layer], state[layer][0])

    def update(
        self, state: Any, layer: int, hidden: torch.Tensor
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        hidden = hidden.detach()
        coefficients, joined = summary_and_recent(state, layer, hidden)
        cut = max(0, joined.shape[1] - self.mem_len)
        if cut:
            coefficients = self._refit(coefficients, joined[:, :cut])
        # without a short-term memory keep a fresh empty tensor, not a view holding the segment
        kept = (
            joined[:, cut:]
            if self.mem_len
            else hidden.new_zeros(hidden.shape[0], 0, hidden.shape[2])
        )
        return (coefficients, kept), hidden.new_zeros(())

    def finish(self, layer_states: list[Any]) -> Any:
        return tuple(layer_states)

    def _refit(self, coefficients: torch.Tensor, evicted: torch.Tensor) -> torch.Tensor:
        carried = coefficients.shape[1] > 0
        fold = fit_matrix(self.basis, self.samples, evicted.shape[1], carried)
        source = torch.cat((coefficients, evicted), 1) if carried else evicted
        return _constant(fold, evicted) @ source
