"""Scaling Transformer's sparse Q/K/V: full attention over sparsely computed q, k and v.

Each of the query, key and value projections splits its ``width`` output units into blocks of
``qkv_sparsity``; a low-rank controller (Linear d -> r, then one Linear r -> width per
projection, ``r = max(1, d_model // 16)``) scores every unit and each token computes only the
best unit of every block (the gathered rows of W, ``sparse_up`` of the sparse FFN), the others
being zero. Training picks by Gumbel-perturbed scores and multiplies the picked values by the
straight-through gate ``1 + (p - p.detach())`` (exactly 1 forward, the softmax gradient
backward), as the sparse FFN does. With ``qkv_sparsity`` 1 there is nothing to pick: no
controller, and the layer is ``FullAttention`` with the same parameter names.

MACs (what FlopCounterMode sees): the controller ``tokens * (d r + 3 r width)``, the three
sparse projections ``3 tokens d width / qkv_sparsity``, the dense output projection and fused
SDPA over every key. The sparse q and k still enter a dense SDPA kernel: the saving is in the
projections, as in the paper (which pairs them with other attention for long inputs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.sparse import controller_rank
from archsearch.families.sparse_qkv import validate_sparse_qkv
from archsearch.models.attention.common import Projections, merge_heads, split_heads
from archsearch.models.ffn.sparse import sparse_up
from archsearch.models.positions import rotary

__all__ = ["QKVController", "SparseQKVAttention"]

PARTS = ("q", "k", "v")


class QKVController(nn.Module):
    """Scores every q, k and v unit of a token through one low-rank bottleneck."""

    def __init__(self, d_model: int, width: int):
        super().__init__()
        rank = controller_rank(d_model)
        self.down = nn.Linear(d_model, rank, bias=False)
        self.q = nn.Linear(rank, width, bias=False)
        self.k = nn.Linear(rank, width, bias=False)
        self.v = nn.Linear(rank, width, bias=False)

    def forward(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = self.down(flat)
        return self.q(low), self.k(low), self.v(low)


class SparseQKVAttention(nn.Module):
    """Full (causal) attention whose q, k, v projections compute one unit per block."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        validate_sparse_qkv(ctx)
        self.causal = ctx.causal
        width = ctx.layer.qkv_dim(ctx.d_model)
        self.sparsity = ctx.layer.qkv_sparsity
        self.blocks = width // self.sparsity
        self.proj = Projections(ctx.d_model, width, ctx.layer.heads)
        self.controller: QKVController | None = None
        # Weights forward reads directly (picked rows): compression keeps them float Linears.
        self.reads_weights: tuple[str, ...] = ()
        if self.sparsity > 1:
            self.controller = QKVController(ctx.d_model, width)
            self.reads_weights = tuple(f"proj.{part}" for part in PARTS)

    def pick(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Picked unit per block [N, blocks] of one projection's scores [N, width] and, in
        training, the straight-through gate. Training draws Gumbel noise from torch's RNG."""
        logits = logits.view(-1, self.blocks, self.sparsity)
        if self.training:
            uniform = torch.rand_like(logits).clamp_(min=1e-20)
            logits = logits - uniform.log_().neg_().log_()
        best, choice = logits.max(-1)
        units = choice + torch.arange(self.blocks, device=logits.device) * self.sparsity
        if not self.training:
            return units, None
        picked = 1 / torch.exp(logits - best.unsqueeze(-1)).sum(-1)
        return units, 1 + (picked - picked.detach())

    def projected(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v [B, T, width]: dense at sparsity 1, else one computed unit per block."""
        if self.controller is None:
            return self.proj.q(x), self.proj.k(x), self.proj.v(x)
        flat = x.reshape(-1, x.shape[-1])
        out = []
        for part, logits in zip(PARTS, self.controller(flat), strict=True):
            weight = getattr(self.proj, part).weight
            units, gate = self.pick(logits)
            values = sparse_up(flat, weight, units)
            if gate is not None:
                values = values * gate
            dense = values.new_zeros(flat.shape[0], weight.shape[0]).scatter(1, units, values)
            out.append(dense.view(*x.shape[:-1], -1))
        return out[0], out[1], out[2]

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        if memory is not None:
            raise ValueError("sparse Q/K/V attention does not read recurrent memory")
        q, k, v = (split_heads(t, self.proj.heads) for t in self.projected(x))
        q, k = rotary(q), rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj.out(merge_heads(y))
