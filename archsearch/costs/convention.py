"""Counting conventions: what a MAC figure counts, written down next to every figure.

Published MAC budgets differ in tokens, in what is excluded and in units; a number without its
convention cannot be compared. Lite Transformer and HAT count the encoder over 30 source tokens
and the decoder over 30 target tokens (teacher-forced), excluding the embedding table and the
output (vocabulary) layer; HAT quotes FLOPs = 2 x MACs. archsearch always stores MACs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archsearch.checks import check_count
from archsearch.errors import InputError, yaml_key

# Parts of a model that MACs and parameters are broken into.
PARTS = (
    "embedding",  # token-table lookup: parameters only, no MACs
    "embedding_projection",  # ALBERT E -> d_model projection
    "attention",
    "cross_attention",
    "ffn",
    "norms",
    "memory",  # recurrent memory's own work (compression, the infinity-former's read and refit)
    "retrieval",  # RETRO: the neighbour encoder and chunked cross-attention
    "output_projection",  # ALBERT d_model -> E projection before the logits
    "output",  # the vocabulary (logits) layer
)


@dataclass(frozen=True)
class CountingConvention:
    """How a profile counts: tokens per sequence (batch 1) and which parts are left out."""

    tokens: int = 30
    source_tokens: int | None = None  # seq2seq encoder length; None = tokens
    exclude: tuple[str, ...] = ("embedding", "output")

    def __post_init__(self) -> None:
        for name in ("tokens", "source_tokens"):
            value = getattr(self, name)
            if value is None and name == "source_tokens":
                continue
            check_count(name, value)
        for part in self.exclude:
            if part not in PARTS:
                known = ", ".join(PARTS)
                raise InputError(f"unknown part {part!r} (parts: {known})", key="exclude")

    @property
    def encoder_tokens(self) -> int:
        return self.source_tokens if self.source_tokens is not None else self.tokens

    def describe(self) -> str:
        left_out = ", ".join(self.exclude) if self.exclude else "nothing"
        return (
            f"MACs (multiply-adds, not FLOPs) for one sequence: decoder over {self.tokens} tokens "
            f"(teacher-forced), encoder over {self.encoder_tokens} source tokens when present; "
            f"excluded: {left_out}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.tokens,
            "source_tokens": self.encoder_tokens,
            "exclude": list(self.exclude),
            "units": "MACs",
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CountingConvention:
        if not isinstance(data, dict):
            raise InputError("must be a mapping", key="convention")
        known = {"tokens", "source_tokens", "exclude", "units", "description"}
        unknown = sorted(set(data) - known, key=str)  # keys may be numbers
        if unknown:
            raise InputError(
                f"unknown key (known: {', '.join(sorted(known))})", key=yaml_key(unknown[0])
            )
        if data.get("units", "MACs") != "MACs":
            raise InputError("archsearch counts MACs; FLOPs = 2 x MACs", key="units")
        exclude = data.get("exclude", ["embedding", "output"])
        if not isinstance(exclude, list) or not all(isinstance(p, str) for p in exclude):
            raise InputError("must be a list of part names", key="exclude")
        return cls(
            tokens=data.get("tokens", 30),
            source_tokens=data.get("source_tokens"),
            exclude=tuple(exclude),
        )
