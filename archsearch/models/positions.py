"""Rotary position embedding, shared by every self-attention family.

Rotary positions are relative, so they stay right when keys come from a recurrent memory that
precedes the current segment (Transformer-XL), and they add no parameters and no MACs.
"""

from __future__ import annotations

import torch


def rotary(x: torch.Tensor, offset: int = 0, base: float = 10000.0) -> torch.Tensor:
    """Rotate channel pairs of ``x`` [..., T, head_dim] by position ``offset + t``."""
    t, dim = x.shape[-2], x.shape[-1]
    half = dim // 2
    freqs = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.arange(offset, offset + t, device=x.device, dtype=torch.float32)[:, None] * freqs
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x[..., :half], x[..., half : 2 * half]
    rotated = torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)
    if dim % 2:
        rotated = torch.cat((rotated, x[..., -1:]), dim=-1)
    return rotated
