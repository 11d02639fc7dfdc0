"""Hugging Face causal-LM wrapper around ``archsearch.build_model`` (remote code).

Copied next to ``config.json`` by ``archsearch export --format hf``. It imports ``archsearch``
(``pip install archsearch``): the model code lives there, once, rather than in a second copy
that could drift from what was searched.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from archsearch import ArchConfig, build_model

from .configuration_archsearch import ArchsearchConfig

IGNORE_INDEX = -100  # Hugging Face's label for positions without a target (padding)


class ArchsearchForCausalLM(PreTrainedModel):
    """Next-token prediction over ``input_ids``; ``labels`` are shifted inside, as in HF LMs.

    The loss adds the model's auxiliary loss (mixture-of-experts balancing; zero otherwise), as
    archsearch's own trainer does. Only right padding is supported: the models are causal, so
    trailing padding never changes the logits of real tokens, but left padding would.
    """

    config_class = ArchsearchConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"

    def __init__(self, config: ArchsearchConfig):
        super().__init__(config)
        arch = ArchConfig.from_dict(config.arch)
        if arch.task != "causal_lm":
            raise ValueError(f"ArchsearchForCausalLM needs task causal_lm, got {arch.task}")
        # Built on the CPU even when Hugging Face constructs on the meta device: some families
        # draw their fixed random features from a seed at construction (Performer, LSH).
        with torch.device("cpu"):
            self.model = build_model(arch)
        if arch.tie_embeddings:
            self._tied_weights_keys = {"model.head.logits.weight": "model.embed.table.weight"}
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """archsearch modules initialise themselves; HF's generic init must not undo that."""

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.embed.table

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.model.head.logits

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutput:
        if attention_mask is not None:
            _check_right_padded(attention_mask)
        output = self.model(input_ids)
        loss = None
        if labels is not None:
            logits = output.logits[:, :-1].float()
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                labels[:, 1:].reshape(-1),
                ignore_index=IGNORE_INDEX,
            )
            loss = loss + output.aux_loss
        return CausalLMOutput(loss=loss, logits=output.logits)


def _check_right_padded(mask: torch.Tensor) -> None:
    """Padding may only follow the real tokens (a mask of ones then zeros on every row)."""
    if bool((mask[:, 1:] > mask[:, :-1]).any()):
        raise ValueError("archsearch models support right padding only (attention_mask 1..1 0..0)")
