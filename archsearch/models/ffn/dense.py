"""Dense position-wise feed-forward: Linear -> activation -> Linear."""

from __future__ import annotations

import torch
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.dense import dense_macs, dense_params

__all__ = ["ACTIVATIONS", "DenseFFN", "dense_macs", "dense_params"]

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class DenseFFN(nn.Module):
    """The Transformer's FFN; ffn_ratio 1 is Lite Transformer's flattened bottleneck."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        hidden = ctx.layer.hidden_dim(ctx.d_model)
        self.up = nn.Linear(ctx.d_model, hidden, bias=ctx.arch.bias)
        self.act = ACTIVATIONS[ctx.layer.activation]()
        self.down = nn.Linear(hidden, ctx.d_model, bias=ctx.arch.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.down(self.act(self.up(x))), x.new_zeros(())
