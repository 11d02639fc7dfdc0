"""SparseFinder: attention over the keys a learned low-dimensional projection predicts.

Per head, queries and keys (rotated, as attention sees them) are projected to ``finder_dim``
channels by two learned matrices (held as [width, finder_dim], head h's rows after head h-1's);
the inner products there score every key, future keys are masked, and each query keeps its
``finder_k`` best keys (``topk``). Attention is then computed exactly, but only over those keys:
they and their values are gathered ([B, H, T, k, head_dim]) and Q.K and A.V are batched matmuls
over k keys per query. A query with fewer earlier keys than k attends to all of them (the
surplus picks are masked), so with ``finder_k`` >= the sequence length this is full attention.

The finder is fed detached queries and keys: the language-model loss cannot reach it (top-k is
discrete) and its own loss does not bend the model's attention. In training the module returns
that loss, ``FINDER_LOSS_WEIGHT`` x KL(dense attention || softmax of the projected scores)
averaged over queries and heads: it needs the dense score matrix (in no_grad), the teacher of
the paper, so training costs a dense attention's scores; inference never forms them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.sparsefinder import FINDER_LOSS_WEIGHT
from archsearch.models.attention.common import Projections, causal_mask, merge_heads

__all__ = ["SparseFinderAttention", "gather_keys", "predicted_keys", "recall_and_sparsity"]


def gather_keys(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x`` [B, H, S, d] at ``index`` [B, H, T, k] -> [B, H, T, k, d] (one index_select, whose
    backward adds into an [B*H*S, d] gradient, never a [T, S, d] one)."""
    b, h, s, d = x.shape
    offsets = torch.arange(b * h, device=x.device).view(b, h, 1, 1) * s
    flat = torch.index_select(x.reshape(b * h * s, d), 0, (index + offsets).reshape(-1))
    return flat.view(*index.shape, d)


class SparseFinderAttention(nn.Module):
    """Exact attention over the ``finder_k`` keys the projected scores rank highest."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        layer = ctx.layer
        width = layer.qkv_dim(ctx.d_model)
        self.causal = ctx.causal
        self.k = layer.finder_k
        self.proj = Projections(ctx.d_model, width, layer.heads)
        # [width, r]: head h's projection is rows h*head_dim..(h+1)*head_dim, like the rows of
        # W_q, so a narrower layer's finder is a leading slice of a wider one's (supernet).
        scale = 1 / math.sqrt(width // layer.heads)
        self.finder_q = nn.Parameter(torch.randn(width, layer.finder_dim) * scale)
        self.finder_k = nn.Parameter(torch.randn(width, layer.finder_dim) * scale)

    def predicted_scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Projected inner products [B, H, T, S] of detached q, k; future keys at -inf."""
        heads, head_dim = q.shape[1], q.shape[-1]
        finder_q = self.finder_q.view(heads, head_dim, -1)
        finder_k = self.finder_k.view(heads, head_dim, -1)
        scores = (q.detach() @ finder_q) @ (k.detach() @ finder_k).transpose(-1, -2)
        if self.causal:
            allowed = causal_mask(q.shape[-2], k.shape[-2], q.device)
            scores = scores.masked_fill(~allowed, float("-inf"))
        return scores

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if memory is not None:
            raise ValueError("SparseFinder attention does not read recurrent memory")
        q, k, v = self.proj.qkv(x, None)
        index, loss = self.select(q, k)
        keys, values = gather_keys(k, index), gather_keys(v, index)
        scores = (q.unsqueeze(-2) @ keys.transpose(-1, -2)).squeeze(-2) / math.sqrt(q.shape[-1])
        if self.causal:  # picks beyond a short prefix land on future keys
            position = torch.arange(q.shape[-2], device=x.device).view(-1, 1)
            scores = scores.masked_fill(index > position, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        y = (weights.unsqueeze(-2) @ values).squeeze(-2)
        return self.proj.out(merge_heads(y)), loss

    def select(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's predicted keys [B, H, T, k] and, in training, the finder's weighted loss
        (zero otherwise). The [T, S] predicted scores are freed before attention runs."""
        predicted = self.predicted_scores(q, k)
        index = predicted_keys(predicted, self.k)
        if not (self.training and torch.is_grad_enabled()):
            return index, q.new_zeros(())
        return index, FINDER_LOSS_WEIGHT * self.finder_loss(q, k, predicted)

    def finder_loss(
        self, q: torch.Tensor, k: torch.Tensor, predicted: torch.Tensor
    ) -> torch.Tensor:
        """KL(dense attention || softmax(predicted)) per query, averaged: zero when the finder
        ranks (and weighs) keys exactly as attention does."""
        with torch.no_grad():
            teacher = torch.softmax(self.dense_scores(q, k), dim=-1)
        student = torch.log_softmax(predicted, dim=-1)
        if self.causal:
            allowed = causal_mask(q.shape[-2], k.shape[-2], q.device)
            student = student.masked_fill(~allowed, 0.0)
        kl = torch.special.xlogy(teacher, teacher) - teacher * student
        return kl.sum(-1).mean()

    def dense_scores(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Full attention's scaled scores [B, H, T, S], future keys at -inf."""
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if self.causal:
            allowed = causal_mask(q.shape[-2], k.shape[-2], q.device)
            scores = scores.masked_fill(~allowed, float("-inf"))
        return scores


def predicted_keys(predicted: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, H, T, min(k, S)] of each query's best-scored keys."""
    return predicted.topk(min(k, predicted.shape[-1]), dim=-1).indices


@torch.no_grad()
def recall_and_sparsity(
    module: SparseFinderAttention, x: torch.Tensor, top: int | None = None
) -> dict[str, float]:
    """How well ``module``'s finder predicts its own dense attention on ``x`` [B, T, d]:

    - ``sparsity``: the share of the allowed (query, key) pairs NOT attended;
    - ``recall``: the share of each query's ``top`` largest dense attention weights (default
      ``finder_k``; all allowed keys of short prefixes) that the finder picked;
    - ``mass``: the dense attention weight that falls on the picked keys (1 = nothing lost).
    """
    q, k, _ = module.proj.qkv(x, None)
    t, s = q.shape[-2], k.shape[-2]
    allowed = causal_mask(t, s, x.device) if module.causal else torch.ones(t, s, dtype=torch.bool)
    dense = torch.softmax(module.dense_scores(q, k), dim=-1)
    picked = torch.zeros_like(dense, dtype=torch.bool)
    picked.scatter_(-1, predicted_keys(module.predicted_scores(q, k), module.k), True)
    picked &= allowed
    wanted = torch.zeros_like(picked)
    gold = dense.topk(min(top or module.k, s), dim=-1).indices
    wanted.scatter_(-1, gold, True)
    wanted &= allowed
    pairs = allowed.sum() * q.shape[0] * q.shape[1]
    return {
        "sparsity": 1 - float(picked.sum()) / float(pairs),
        "recall": float((picked & wanted).sum()) / float(wanted.sum()),
        "mass": float((dense * picked).sum(-1).mean()),
    }
