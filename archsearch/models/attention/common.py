"""Pieces every attention family shares: head splitting and the q/k/v/output projections."""

from __future__ import annotations

import torch
from torch import nn

from archsearch.families.projections import projection_macs, projection_params
from archsearch.models.positions import rotary

__all__ = [
    "Projections",
    "causal_mask",
    "merge_heads",
    "projection_macs",
    "projection_params",
    "split_heads",
]


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, T, H*d] -> [B, H, T, d]."""
    b, t, width = x.shape
    return x.view(b, t, heads, width // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, H, T, d] -> [B, T, H*d]."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class Projections(nn.Module):
    """Query, key, value and output projections of width ``attn_dim`` (biases when asked)."""

    def __init__(self, d_model: int, attn_dim: int, heads: int, bias: bool = False):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, attn_dim, bias=bias)
        self.k = nn.Linear(d_model, attn_dim, bias=bias)
        self.v = nn.Linear(d_model, attn_dim, bias=bias)
        self.out = nn.Linear(attn_dim, d_model, bias=bias)

    def qkv(
        self, x: torch.Tensor, memory: torch.Tensor | None, positional: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heads of q (over x) and k, v (over memory + x), rotary-positioned.

        Queries sit at positions M..M+T-1 and keys at 0..M+T-1, M the memory length.
        """
        source = x if memory is None else torch.cat((memory, x), dim=1)
        offset = source.shape[1] - x.shape[1]
        q = split_heads(self.q(x), self.heads)
        k = split_heads(self.k(source), self.heads)
        v = split_heads(self.v(source), self.heads)
        if positional:
            q, k = rotary(q, offset), rotary(k, 0)
        return q, k, v


def causal_mask(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    """Boolean [T, S] mask, True where query i (at position S-T+i) may see key j."""
    q_pos = torch.arange(keys - queries, keys, device=device)[:, None]
    k_pos = torch.arange(keys, device=device)[None, :]
    return k_pos <= q_pos
