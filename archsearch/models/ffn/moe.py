"""Switch Transformer mixture of experts: top-1 routing to dense FFN experts with a capacity.

Each token goes to the one expert its router ranks highest; the expert's output is scaled by
that router probability, so the router learns through the task loss. An expert takes at most
``capacity = ceil(capacity_factor * tokens / experts)`` tokens per forward call (tokens of the
whole batch); tokens beyond it get a zero FFN output, i.e. only the block's residual carries them.

Tokens claim capacity in position-major order (every sequence's token 0, then every token 1,
...), so whether a token overflows depends only on tokens at the same or earlier positions: the
decoder stays causal, and a token's fate never depends on a later token of any sequence.

Auxiliary loss: the Switch load-balancing loss ``experts * sum_i f_i * P_i`` is returned already
multiplied by ``BALANCE_WEIGHT`` (0.01, the Switch paper's alpha), because trainers add
``ModelOutput.aux_loss`` to the task loss as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.families import BlockContext
from archsearch.families.switch_moe import expert_capacity, switch_macs, switch_params
from archsearch.models.ffn.dense import DenseFFN

__all__ = [
    "BALANCE_WEIGHT",
    "Routing",
    "SwitchFFN",
    "expert_capacity",
    "load_balancing_loss",
    "switch_macs",
    "switch_params",
]

BALANCE_WEIGHT = 0.01  # Switch Transformer's alpha: aux_loss = 0.01 * load-balancing loss


def load_balancing_loss(probs: torch.Tensor, expert: torch.Tensor) -> torch.Tensor:
    """Switch's ``E * sum_i f_i * P_i`` (unscaled): 1.0 when routing and probabilities are even.

    ``probs`` [N, E] are router probabilities, ``expert`` [N] the chosen expert of each token;
    ``f_i`` counts every token routed to i, overflowing ones included (as in Switch).
    """
    experts = probs.shape[-1]
    fraction = torch.bincount(expert, minlength=experts).to(probs.dtype) / expert.numel()
    return experts * torch.sum(fraction * probs.mean(0))


@dataclass
class Routing:
    """Where each of N flattened tokens goes and with what weight."""

    probs: torch.Tensor  # [N, E] router probabilities
    expert: torch.Tensor  # [N] chosen expert (argmax)
    gate: torch.Tensor  # [N] probability of the chosen expert (scales its output)
    kept: torch.Tensor  # [N] bool: within its expert's capacity


class SwitchFFN(nn.Module):
    """Router plus ``experts`` dense FFNs; each token runs through at most one expert."""

    def __init__(self, ctx: BlockContext):
        super().__init__()
        self.experts = ctx.layer.experts
        self.capacity_factor = ctx.layer.capacity_factor
        self.router = nn.Linear(ctx.d_model, self.experts, bias=False)
        self.ffns = nn.ModuleList(DenseFFN(ctx) for _ in range(self.experts))

    def route(self, x: torch.Tensor) -> Routing:
        """Top-1 routing of ``x`` [..., T, D]; capacity is claimed position-major (see module)."""
        flat = x.reshape(-1, x.shape[-1])
        probs = F.softmax(self.router(flat), dim=-1)
        gate, expert = probs.max(dim=-1)
        capacity: int | torch.Tensor
        if torch.compiler.is_exporting():  # the token count is symbolic: capacity in the graph
            capacity = _traced_capacity(flat, self.experts, self.capacity_factor)
            claims = _one_hot(expert, self.experts)
        else:
            capacity = expert_capacity(flat.shape[0], self.experts, self.capacity_factor)
            claims = F.one_hot(expert, self.experts)  # [N, E], batch-major
        steps = x.shape[-2] if x.dim() > 1 else 1
        # Rank of each token within its expert, counting position-major across the batch.
        by_position = claims.view(-1, steps, self.experts).transpose(0, 1)  # [T, B, E]
        rank = by_position.reshape(-1, self.experts).cumsum(0).view_as(by_position)
        position = (rank.transpose(0, 1).reshape(-1, self.experts) * claims).sum(-1)
        return Routing(probs=probs, expert=expert, gate=gate, kept=position <= capacity)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.compiler.is_exporting():
            return self._every_expert(x)
        flat = x.reshape(-1, x.shape[-1])
        routing = self.route(x)
        kept = routing.kept.nonzero().squeeze(1)
        order = kept[torch.argsort(routing.expert[kept], stable=True)]
        counts = torch.bincount(routing.expert[order], minlength=self.experts).tolist()
        outputs = [
            ffn(flat.index_select(0, index))[0]
            for ffn, index in zip(self.ffns, order.split(counts), strict=True)
            if index.numel()
        ]
        y = flat.new_zeros(flat.shape)
        if outputs:
            scaled = torch.cat(outputs) * routing.gate[order].unsqueeze(-1)
            y = y.index_copy(0, order, scaled)
        aux = BALANCE_WEIGHT * load_balancing_loss(routing.probs, routing.expert)
        return y.view_as(x), aux

    def _every_expert(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The traced (ONNX) form: every expert runs on every token and a one-hot mask keeps the
        chosen, in-capacity one. No data-dependent shapes, so torch.export can trace it; the
        output equals ``forward``'s (the other experts' rows are multiplied by zero), at
        ``experts`` times the FFN MACs."""
        flat = x.reshape(-1, x.shape[-1])
        routing = self.route(x)
        weight = _one_hot(routing.expert, self.experts).to(flat.dtype)
        weight = weight * (routing.gate * routing.kept.to(flat.dtype)).unsqueeze(-1)
        y = flat.new_zeros(flat.shape)
        for index, ffn in enumerate(self.ffns):
            y = y + ffn(flat)[0] * weight[:, index : index + 1]
        fraction = _one_hot(routing.expert, self.experts).to(flat.dtype).mean(0)
        aux = BALANCE_WEIGHT * self.experts * torch.sum(fraction * routing.probs.mean(0))
        return y.view_as(x), aux


def _one_hot(expert: torch.Tensor, experts: int) -> torch.Tensor:
    """[N] -> [N, E] int64 (a comparison, which every runtime has)."""
    return (expert.unsqueeze(-1) == torch.arange(experts, device=expert.device)).long()


def _traced_capacity(flat: torch.Tensor, experts: int, capacity_factor: float) -> torch.Tensor:
    """``expert_capacity`` as tensor arithmetic (float64, rounded to 9 places like it), for a
    graph whose token count is only known when it runs."""
    tokens = torch.ones_like(flat[:, 0], dtype=torch.float64).sum()
    share = torch.round(tokens * capacity_factor / experts * 1e9) / 1e9
    return torch.ceil(share).clamp_min(1).to(torch.long)
