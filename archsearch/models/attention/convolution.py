"""Lightweight and dynamic convolutions (Wu et al. 2019): LSRA's short-range branch.

Both mix each channel only with itself over a window of ``kernel`` positions (depthwise over
time) using kernels shared by ``groups`` contiguous blocks of channels and softmax-normalised over
the kernel. A lightweight kernel is a learned weight per group; a dynamic kernel is predicted at
every position from that position's input. Padding is causal (left only, so position t sees
t-K+1..t) in causal stacks and centred (t-(K-1)//2..t+K//2) in encoders.

Both run only on ops that ``FlopCounterMode`` counts exactly, so the cost formulas (in
``archsearch.families.lsra``) are what runs: ``F.conv1d`` with one group per channel
(lightweight; counted as ``tokens * channels * kernel``), and a batched matmul of the unfolded
windows with the predicted kernels (dynamic; counted as the same product). This module is no
family of its own; ``lsra.py`` builds on it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families.lsra import CONV_TYPES, conv_branch_macs, conv_branch_params

__all__ = [
    "CONV_TYPES",
    "ConvBranch",
    "DynamicConv",
    "LightweightConv",
    "conv_branch_macs",
    "conv_branch_params",
    "time_padding",
]


def time_padding(kernel: int, causal: bool) -> tuple[int, int]:
    """Zeros added before and after the sequence so the output keeps the input's length."""
    return (kernel - 1, 0) if causal else ((kernel - 1) // 2, kernel // 2)


class LightweightConv(nn.Module):
    """Depthwise convolution with one softmax-normalised kernel per group of channels."""

    def __init__(self, channels: int, kernel: int, groups: int, causal: bool):
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.groups = groups
        self.padding = time_padding(kernel, causal)
        self.weight = nn.Parameter(torch.empty(groups, kernel))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]."""
        channels = x.shape[-1]
        kernel = F.softmax(self.weight, dim=-1)
        # Channel c uses group c // (C / groups): repeat each group's kernel over its block.
        per_channel = kernel.repeat_interleave(channels // self.groups, dim=0).unsqueeze(1)
        padded = F.pad(x.transpose(1, 2), self.padding)
        return F.conv1d(padded, per_channel, groups=channels).transpose(1, 2)


class DynamicConv(nn.Module):
    """Depthwise convolution whose per-group kernels are predicted from each position's input."""

    def __init__(self, channels: int, kernel: int, groups: int, causal: bool):
        super().__init__()
        if channels % groups:
            raise ValueError(f"{channels} channels do not split into {groups} groups")
        self.groups = groups
        self.kernel = kernel
        self.padding = time_padding(kernel, causal)
        self.predict = nn.Linear(channels, groups * kernel, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C]."""
        b, t, c = x.shape
        h, k = self.groups, self.kernel
        weights = F.softmax(self.predict(x).view(b, t, h, k, 1), dim=-2)
        padded = F.pad(x, (0, 0, *self.padding))  # pad the time axis
        windows = padded.unfold(1, k, 1).reshape(b, t, h, c // h, k)  # [B, T, H, C/H, K]
        # One [C/H, K] x [K, 1] product per (position, group): a bmm the counter sees.
        return torch.matmul(windows, weights).reshape(b, t, c)


class ConvBranch(nn.Module):
    """Lite Transformer's convolution branch: Linear c->2c, GLU, convolution, Linear c->c."""

    def __init__(self, channels: int, kernel: int, groups: int, conv_type: str, causal: bool):
        super().__init__()
        if conv_type not in CONV_TYPES:
            raise ValueError(f"unknown convolution type {conv_type!r}")
        self.glu = nn.Linear(channels, 2 * channels, bias=False)
        conv = LightweightConv if conv_type == "lightweight" else DynamicConv
        self.conv = conv(channels, kernel, groups, causal)
        self.out = nn.Linear(channels, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(F.glu(self.glu(x), dim=-1)))
