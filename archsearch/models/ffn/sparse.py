"""Scaling Transformer's sparse feed-forward layer (Jaszczur et al., 2021).

The hidden units are split into blocks of ``sparsity`` units; a small low-rank controller
(Linear d -> r -> hidden, ``r = max(1, d_model // 16)``) picks one unit per block for each
token, and only the picked units are computed: the up-projection gathers the picked rows of W1
per token, the down-projection the picked rows of W2^T, each a batched matmul over
``hidden / sparsity`` units. In eval the pick is the controller's argmax; in training it is the
argmax of Gumbel-perturbed logits, and the picked activation is multiplied by a straight-through
gate ``1 + (p - p.detach())`` (p: the picked unit's softmax probability within its block), which
is exactly 1 in the forward pass but passes the softmax gradient to the controller.

With sparsity 1 every unit is its own block, so nothing is chosen: no controller is built and
the layer is the dense FFN (same parameter names, same computation).

MACs (what FlopCounterMode sees): controller ``tokens * (d * r + r * hidden)`` plus
``2 * tokens * d * hidden / sparsity`` for the two sparse projections. Gathers, the Gumbel noise
and the gate are element-wise work, not counted. Token chunks keep the gathered weights in cache
(the loop is over chunks, never single tokens). The backward pass scatters gradients into dense
[tokens, hidden] matrices and uses plain matmuls, faster on a CPU than gathering again: training
costs about what a dense FFN's backward does; the saving is in the forward (inference) pass.
"""

from __future__ import annotations

import torch
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.sparse import (
    CHUNK_ELEMENTS,
    controller_rank,
    sparse_macs,
    sparse_params,
    validate_sparse,
)
from archsearch.models.ffn.dense import ACTIVATIONS

__all__ = [
    "CHUNK_ELEMENTS",
    "SparseFFN",
    "controller_rank",
    "sparse_down",
    "sparse_macs",
    "sparse_params",
    "sparse_up",
    "validate_sparse",
]


class _SparseUp(torch.autograd.Function):
    """``out[n, b] = x[n] . w[units[n, b]]``: the up-projection for the picked units only.

    Forward gathers the picked rows chunk by chunk into one reused buffer and runs a batched
    matmul (counted by FlopCounterMode). Backward scatters the gradient into a dense [N, hidden]
    matrix and uses two plain matmuls: on a CPU this is faster than gathering again, and it never
    materialises per-token weight copies.
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        tokens, blocks = units.shape
        out = x.new_empty(tokens, 1, blocks)
        step = max(1, CHUNK_ELEMENTS // (blocks * x.shape[1]))
        buffer = x.new_empty(min(step, tokens) * blocks, x.shape[1])
        for start in range(0, tokens, step):
            stop = min(tokens, start + step)
            rows = buffer[: (stop - start) * blocks]
            torch.index_select(w, 0, units[start:stop].reshape(-1), out=rows)
            rows = rows.view(stop - start, blocks, -1).transpose(1, 2)
            torch.bmm(x[start:stop].unsqueeze(1), rows, out=out[start:stop])
        return out.squeeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        x, w, units = inputs
        ctx.save_for_backward(x, w, units)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        x, w, units = ctx.saved_tensors
        dense = grad.new_zeros(x.shape[0], w.shape[0]).scatter_(1, units, grad)
        return dense @ w, dense.t() @ x, None


class _SparseDown(torch.autograd.Function):
    """``out[n] = sum_b a[n, b] * w[:, units[n, b]]`` for ``w`` the [d, hidden] down weight."""

    @staticmethod
    def forward(a: torch.Tensor, w: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        tokens, blocks = units.shape
        by_unit = w.t().contiguous()  # [hidden, d]: a unit's weights are one contiguous row
        out = a.new_empty(tokens, 1, w.shape[0])
        step = max(1, CHUNK_ELEMENTS // (blocks * w.shape[0]))
        buffer = a.new_empty(min(step, tokens) * blocks, w.shape[0])
        for start in range(0, tokens, step):
            stop = min(tokens, start + step)
            rows = buffer[: (stop - start) * blocks]
            torch.index_select(by_unit, 0, units[start:stop].reshape(-1), out=rows)
            rows = rows.view(stop - start, blocks, -1)
            torch.bmm(a[start:stop].unsqueeze(1), rows, out=out[start:stop])
        return out.squeeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
        a, w, units = inputs
        ctx.save_for_backward(a, w, units)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        a, w, units = ctx.saved_tensors
        grad_a = (grad @ w).gather(1, units)
        dense = a.new_zeros(a.shape[0], w.shape[1]).scatter_(1, units, a)
        return grad_a, grad.t() @ dense, None


class SparseFFN(nn.Module):
    """Dense-FFN weights (``up``, ``down``) plus, for sparsity > 1, the unit-picking controller."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        validate_sparse(ctx)
        d, hidden = ctx.d_model, ctx.layer.hidden_dim(ctx.d_model)
        self.sparsity = ctx.layer.sparsity
        self.blocks = hidden // self.sparsity
        self.up = nn.Linear(d, hidden, bias=False)
        self.act = ACTIVATIONS[ctx.layer.activation]()
        self.down = nn.Linear(hidden, d, bias=False)
        self.controller: nn.Sequential | None = None
        # Children whose .weight forward reads directly: quantization must leave them float.
        self.reads_weights: tuple[str, ...] = ("up", "down") if self.sparsity > 1 else ()
        if self.sparsity > 1:
            rank = controller_rank(d)
            self.controller = nn.Sequential(
                nn.Linear(d, rank, bias=False), nn.Linear(rank, hidden, bias=False)
            )

    def pick(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Picked hidden unit per block [N, blocks] and, in training, its straight-through gate.

        Needs the controller (sparsity > 1). Training draws Gumbel noise from torch's RNG.
        """
        if self.controller is None:
            raise RuntimeError("sparsity 1 has one unit per block: nothing to pick")
        logits = self.controller(flat).view(-1, self.blocks, self.sparsity)
        if self.training:
            # Gumbel noise -log(-log(U)) so training explores other units.
            uniform = torch.rand_like(logits).clamp_(min=1e-20)
            logits = logits - uniform.log_().neg_().log_()
        best, choice = logits.max(-1)
        units = choice + torch.arange(self.blocks, device=flat.device) * self.sparsity
        if not self.training:
            return units, None
        # Softmax probability of the picked (largest) logit, computed without a softmax over a
        # short last dimension, which PyTorch's CPU kernel runs slowly.
        picked = 1 / torch.exp(logits - best.unsqueeze(-1)).sum(-1)
        return units, 1 + (picked - picked.detach())  # exactly 1, softmax gradient

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zero = x.new_zeros(())
        if self.controller is None:
            return self.down(self.act(self.up(x))), zero
        flat = x.reshape(-1, x.shape[-1])
        units, gate = self.pick(flat)
        hidden = self.act(sparse_up(flat, self.up.weight, units))
        if gate is not None:
            hidden = hidden * gate
        return sparse_down(hidden, self.down.weight, units).view_as(x), zero


def sparse_up(x: torch.Tensor, weight: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``out[n, b] = x[n] . weight[units[n, b]]`` for the [hidden, d] up weight; [N, blocks]."""
    return _SparseUp.apply(x, weight, units)


def sparse_down(a: torch.Tensor, weight: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``out[n] = sum_b a[n, b] * weight[:, units[n, b]]`` for the [d, hidden] down weight."""
    return _SparseDown.apply(a, weight, units)
