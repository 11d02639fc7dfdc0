"""Costs of a seq2seq decoder's cross-attention over the encoder (always full, never causal).

Not a family one chooses: every decoder layer of a seq2seq model has it.
"""

from __future__ import annotations


def cross_attention_macs(d_model: int, attn_dim: int, tokens: int, source_tokens: int) -> int:
    """q/out over target tokens, k/v over source tokens, dense score matrix."""
    projections = 2 * tokens * d_model * attn_dim + 2 * source_tokens * d_model * attn_dim
    return projections + 2 * tokens * source_tokens * attn_dim


def cross_attention_params(d_model: int, attn_dim: int) -> int:
    return 4 * d_model * attn_dim
