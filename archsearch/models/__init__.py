"""PyTorch implementation of every block in the search space; ``build_model(config)``."""

from __future__ import annotations

from torch import nn

from archsearch.config import ArchConfig
from archsearch.models.lm import CausalLM, Seq2SeqLM
from archsearch.models.output import ModelOutput
from archsearch.models.validate import validate_config
from archsearch.seeding import seeded

__all__ = ["CausalLM", "ModelOutput", "Seq2SeqLM", "build_model", "validate_config"]


def build_model(config: ArchConfig, seed: int | None = None) -> nn.Module:
    """The model ``config`` describes, freshly initialised.

    With ``seed``, built inside ``seeded(seed)``: a private copy of torch's global generator
    seeded with it (weights and random buffers the same on every call; the caller's random
    stream left as it was); without, from the global generator as it stands.
    """
    validate_config(config)
    if seed is None:
        return Seq2SeqLM(config) if config.task == "seq2seq" else CausalLM(config)
    with seeded(seed):
        return build_model(config)
