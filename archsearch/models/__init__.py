"""PyTorch implementation of every block in the search space; ``build_model(config)``."""

from __future__ import annotations

from torch import nn

from archsearch.config import ArchConfig
from archsearch.models.lm import CausalLM, Seq2SeqLM
from archsearch.models.output import ModelOutput
from archsearch.models.validate import validate_config

__all__ = ["CausalLM", "ModelOutput", "Seq2SeqLM", "build_model", "validate_config"]


def build_model(config: ArchConfig) -> nn.Module:
    """The model ``config`` describes, freshly initialised (seed torch for reproducibility)."""
    validate_config(config)
    return Seq2SeqLM(config) if config.task == "seq2seq" else CausalLM(config)
