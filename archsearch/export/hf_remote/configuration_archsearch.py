"""Hugging Face configuration of an exported archsearch architecture (remote code).

This file is copied next to ``config.json`` by ``archsearch export --format hf`` so that
``AutoConfig.from_pretrained(dir, trust_remote_code=True)`` can read it; it needs
``archsearch`` installed only in the model file, not here.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class ArchsearchConfig(PretrainedConfig):
    """Holds the archsearch flat architecture (``arch``) and where it came from (``provenance``).

    ``vocab_size`` and ``tie_word_embeddings`` mirror the architecture so generic Hugging Face
    code (Trainer, resizing checks) reads the values it expects.
    """

    model_type = "archsearch"

    def __init__(
        self,
        arch: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.arch = dict(arch or {})
        self.provenance = dict(provenance or {})
        kwargs.setdefault("vocab_size", self.arch.get("vocab_size", 256))
        kwargs.setdefault("tie_word_embeddings", self.arch.get("tie_embeddings", True))
        super().__init__(**kwargs)
