"""Analytic costs of the model core against FlopCounterMode on the built model."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from archsearch import ArchConfig, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.convention import PARTS
from archsearch.costs.reference import measured_macs
from archsearch.models.memory import steady_state

VOCAB = 37
CONFIGS = 40


def random_stack(rng: random.Random, n: int, d: int, shared: bool) -> dict[str, Any]:
    """Per-layer heads, attention width (even head width) and FFN width; uniform if shared."""

    def layer() -> tuple[int, int | None, int | None]:
        heads = rng.choice([1, 2, 4])
        attn_dim = heads * rng.choice([2, 4, 6]) if rng.random() < 0.7 else None
        if attn_dim is None and (d % heads or d // heads % 2):
            attn_dim = heads * 2
        ffn_dim = rng.randint(3, 40) if rng.random() < 0.7 else None
        return heads, attn_dim, ffn_dim

    layers = [layer()] * n if shared else [layer() for _ in range(n)]
    keys = ("heads", "attn_dim", "ffn_dim")
    return {key: [lay[i] for lay in layers] for i, key in enumerate(keys)}


def random_case(seed: int) -> tuple[ArchConfig, int, int]:
    """A random core architecture, decoder tokens and source tokens."""
    rng = random.Random(seed)
    task = rng.choice(["causal_lm", "causal_lm", "seq2seq"])
    n, d = rng.randint(1, 3), rng.choice([8, 12, 16, 20])
    shared = rng.random() < 0.3
    data: dict[str, Any] = {
        "task": task,
        "vocab_size": VOCAB,
        "d_model": d,
        "n_layers": n,
        "embed_dim": rng.choice([None, None, 4, 6]),
        "tie_embeddings": rng.random() < 0.5,
        "share_layers": shared,
        **random_stack(rng, n, d, shared),
    }
    # fairseq's Transformer (HAT): biases and post-norm blocks, for either task
    data["bias"] = rng.random() < 0.4
    data["norm"] = rng.choice(["pre", "post"])
    if task == "seq2seq":
        m = rng.randint(1, 3)
        data["n_encoder_layers"] = m
        # HAT: the encoder's width is chosen apart from the decoder's
        source_d = rng.choice([d, 8, 12, 16, 20])
        data["encoder_d_model"] = None if source_d == d else source_d
        stack = random_stack(rng, m, source_d, shared)
        data.update({f"encoder_{key}": value for key, value in stack.items()})
        widths = [a if a is not None else d for a in data["attn_dim"]]
        cross = [
            (
                rng.choice([h for h in (1, 2, 4, None) if h is None or w % h == 0]),
                rng.randint(1, min(3, m)),
            )
            for w in widths
        ]
        if shared:
            cross = [cross[0]] * n
        data["cross_heads"] = [h for h, _ in cross]
        data["cross_layers"] = [k for _, k in cross]
    else:
        data["memory"] = rng.choice(["none", "xl", "compressive"])
        if data["memory"] != "none":
            data["mem_len"] = rng.randint(1, 8)
        if data["memory"] == "compressive":
            data["compress_len"] = rng.randint(1, 4)
            data["compress_rate"] = rng.randint(1, 3)
            data["compress_fn"] = rng.choice(["mean", "conv"])
    return ArchConfig.from_dict(data), rng.randint(1, 9), rng.randint(1, 9)


def measure(cfg: ArchConfig, t: int, s: int) -> tuple[torch.nn.Module, dict[str, int]]:
    """Build and count one forward (memory models in steady state: every memory full)."""
    torch.manual_seed(0)
    model = build_model(cfg)
    target = torch.randint(0, VOCAB, (1, t))
    if cfg.task == "seq2seq":
        return model, measured_macs(model, target, torch.randint(0, VOCAB, (1, s)))
    return model, measured_macs(model, target, state=steady_state(cfg))


def convention(t: int, s: int, exclude: tuple[str, ...] = ("embedding", "output")):
    return CountingConvention(tokens=t, source_tokens=s, exclude=exclude)


def by_part(measured: dict[str, int], root: str) -> dict[str, int]:
    """What the counter attributes to each part, from its per-module figures."""

    def summed(pattern: str) -> int:
        return sum(v for k, v in measured.items() if re.fullmatch(rf"{root}\.{pattern}", k))

    return {
        "embedding_projection": summed(r"(source_)?embed\.project"),
        "attention": summed(r"(blocks|encoder|decoder)\.\d+\.attn"),
        "cross_attention": summed(r"decoder\.\d+\.cross"),
        "ffn": summed(r"(blocks|encoder|decoder)\.\d+\.ffn"),
        "memory": summed(r"memory\.compressors\.\d+"),
        "output_projection": summed(r"head\.project"),
        "output": summed(r"head\.logits"),
    }


@pytest.mark.parametrize("seed", range(CONFIGS))
def test_analytic_costs_equal_measured(seed: int) -> None:
    cfg, t, s = random_case(seed)
    model, measured = measure(cfg, t, s)
    costs = estimate_costs(cfg, convention(t, s))
    assert costs.total_macs == measured["total"], cfg.to_dict()
    assert costs.params == sum(p.numel() for p in model.parameters()), cfg.to_dict()
    counted = by_part(measured, type(model).__name__)
    for part, macs in counted.items():
        assert costs.macs_by_part[part] == macs, (part, cfg.to_dict())


@pytest.mark.parametrize("seed", range(0, CONFIGS, 4))
def test_excluded_parts_leave_the_counted_figure(seed: int) -> None:
    cfg, t, s = random_case(seed)
    rng = random.Random(seed)
    for exclude in [(), ("embedding", "output"), tuple(rng.sample(PARTS, 3)), PARTS]:
        costs = estimate_costs(cfg, convention(t, s, exclude))
        left_out = sum(costs.macs_by_part[p] for p in exclude)
        assert costs.macs == costs.total_macs - left_out
        assert costs.counted_params == costs.params - sum(costs.params_by_part[p] for p in exclude)
        assert costs.convention.exclude == exclude


def test_default_convention_leaves_out_the_output_layer() -> None:
    cfg = ArchConfig.from_dict(
        {"vocab_size": VOCAB, "d_model": 16, "n_layers": 2, "heads": 2, "embed_dim": 8}
    )
    _, measured = measure(cfg, 30, 30)
    costs = estimate_costs(cfg)
    assert costs.convention.tokens == 30
    assert costs.macs == measured["total"] - measured["CausalLM.head.logits"]
    assert costs.macs_by_part["output"] == 30 * 8 * VOCAB


@torch.no_grad()
def test_cpu_attention_needs_the_registered_formula() -> None:
    """Without reference.py's formula the counter misses exactly the attention scores."""
    d, t, attn = 16, 7, [8, 12]
    cfg = ArchConfig.from_dict(
        {"vocab_size": VOCAB, "d_model": d, "n_layers": 2, "heads": 2, "attn_dim": attn}
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = torch.randint(0, VOCAB, (1, t))
    with FlopCounterMode(display=False) as plain:
        model(batch)
    analytic = estimate_costs(cfg, convention(t, t)).total_macs
    scores = sum(2 * t * t * a for a in attn)  # Q.K^T and A.V, dense kernel
    assert plain.get_total_flops() // 2 == analytic - scores
    assert measured_macs(model, batch)["total"] == analytic
