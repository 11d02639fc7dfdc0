"""Gated feed-forward: down(act(gate(x)) * up(x)), GEGLU with GELU, ReGLU with ReLU."""

from __future__ import annotations

import torch
from torch import nn

from archsearch.families import BlockContext
from archsearch.models.ffn.dense import ACTIVATIONS

__all__ = ["GatedFFN"]


class GatedFFN(nn.Module):
    """The dense FFN with its hidden units multiplied by a learned, activated gate."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        hidden = ctx.layer.hidden_dim(ctx.d_model)
        self.up = nn.Linear(ctx.d_model, hidden, bias=ctx.arch.bias)  # the value path
        self.gate = nn.Linear(ctx.d_model, hidden, bias=ctx.arch.bias)
        self.act = ACTIVATIONS[ctx.layer.activation]()
        self.down = nn.Linear(hidden, ctx.d_model, bias=ctx.arch.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.down(self.act(self.gate(x)) * self.up(x)), x.new_zeros(())
