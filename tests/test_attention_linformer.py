"""Linformer attention: equivalences, the blockwise causal form, causality and exact costs."""

from __future__ import annotations

import math
import random

import pytest
import torch

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.attention.common import merge_heads, projection_macs
from archsearch.models.attention.linformer import linformer_macs
from archsearch.models.registry import BlockContext, attention_family


def _module(causal: bool, d_model: int = 16, heads: int = 2, k: int = 4, max_seq_len: int = 64):
    arch = ArchConfig.from_dict(
        {"n_layers": 1, "d_model": d_model, "heads": heads, "attention": "linformer",
         "linformer_k": k, "max_seq_len": max_seq_len}
    )  # fmt: skip
    ctx = BlockContext(layer=arch.layers[0], arch=arch, causal=causal, encoder=not causal)
    return ctx, attention_family("linformer").build(ctx)


def _full_like(ctx: BlockContext, linformer: torch.nn.Module) -> torch.nn.Module:
    """Full attention with the same q/k/v/output weights."""
    full = attention_family("full").build(ctx)
    full.load_state_dict(linformer.state_dict(), strict=False)
    return full


def test_identity_projections_with_k_equal_n_are_full_attention() -> None:
    torch.manual_seed(0)
    tokens = 12  # fewer than max_seq_len: E[:, :T] must be the identity on the first T columns
    ctx, module = _module(causal=False, k=tokens, max_seq_len=32)
    with torch.no_grad():
        module.e.copy_(torch.eye(tokens, 32))
        module.f.copy_(torch.eye(tokens, 32))
    x = torch.randn(3, tokens, 16)
    assert torch.allclose(module(x), _full_like(ctx, module)(x), atol=1e-6)


def test_identity_projections_make_a_linformer_encoder_a_full_encoder() -> None:
    flat = {"task": "seq2seq", "n_layers": 1, "n_encoder_layers": 2, "d_model": 16, "heads": 2}
    flat = {**flat, "vocab_size": 30, "max_seq_len": 24}
    torch.manual_seed(1)
    full = build_model(ArchConfig.from_dict(flat)).eval()
    linformer = build_model(
        ArchConfig.from_dict({**flat, "encoder_attention": "linformer", "encoder_linformer_k": 10})
    ).eval()
    missing = linformer.load_state_dict(full.state_dict(), strict=False).missing_keys
    assert sorted(missing) == [f"encoder.{i}.attn.{p}" for i in (0, 1) for p in ("e", "f")]
    with torch.no_grad():
        for block in linformer.encoder:
            block.attn.e.copy_(torch.eye(10, 24))
            block.attn.f.copy_(torch.eye(10, 24))
    source, target = torch.randint(0, 30, (2, 10)), torch.randint(0, 30, (2, 7))
    assert torch.allclose(linformer(target, source).logits, full(target, source).logits, atol=1e-5)


@pytest.mark.parametrize("tokens", [5, 16])
def test_causal_form_with_one_block_is_causal_full_attention(tokens: int) -> None:
    flat = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": 30}
    torch.manual_seed(2)
    full = build_model(ArchConfig.from_dict(flat)).eval()
    linformer = build_model(
        ArchConfig.from_dict({**flat, "attention": "linformer", "linformer_k": 16})
    ).eval()
    linformer.load_state_dict(full.state_dict(), strict=False)
    ids = torch.randint(0, 30, (2, tokens))  # T <= k: one block, no summaries
    assert torch.allclose(linformer(ids).logits, full(ids).logits, atol=1e-5)


def _reference_causal(module: torch.nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """The blockwise causal form, one query at a time: own block's earlier keys plus slots
    ``E[:, :jc] K[:jc]`` (and F for values) over the completed blocks before it."""
    q, keys, values = module.proj.qkv(x, None)
    rows = []
    for t in range(x.shape[1]):
        start = t // k * k
        kk, vv = keys[:, :, start : t + 1], values[:, :, start : t + 1]
        if start:
            kk = torch.cat((module.e[:, :start] @ keys[:, :, :start], kk), dim=2)
            vv = torch.cat((module.f[:, :start] @ values[:, :, :start], vv), dim=2)
        scores = q[:, :, t : t + 1] @ kk.transpose(-1, -2) / math.sqrt(q.shape[-1])
        rows.append(scores.softmax(-1) @ vv)
    return module.proj.out(merge_heads(torch.cat(rows, dim=2)))


@pytest.mark.parametrize("tokens,k", [(23, 4), (24, 4), (9, 8), (30, 7)])
def test_blockwise_causal_form_matches_its_definition(tokens: int, k: int) -> None:
    torch.manual_seed(3)
    _, module = _module(causal=True, k=k)
    x = torch.randn(2, tokens, 16, dtype=torch.float64)
    module = module.double()
    assert torch.allclose(module(x), _reference_causal(module, x, k), atol=1e-10)


def test_causal_model_never_sees_future_tokens() -> None:
    torch.manual_seed(4)
    cfg = ArchConfig.from_dict(
        {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": 30, "attention": "linformer",
         "linformer_k": 4, "max_seq_len": 32}
    )  # fmt: skip
    model = build_model(cfg).eval()
    tokens = torch.randint(0, 30, (1, 30))
    with torch.no_grad():
        before = model(tokens).logits
        for t in (0, 3, 4, 13, 28):
            changed = tokens.clone()
            changed[0, t + 1 :] = (changed[0, t + 1 :] + 1) % 30
            after = model(changed).logits
            assert torch.allclose(after[0, : t + 1], before[0, : t + 1], atol=1e-6), t
            assert not torch.allclose(after[0, t + 1 :], before[0, t + 1 :])


def test_encoder_slots_mix_the_whole_sequence() -> None:
    """Bidirectional: the first position depends on the last (what the causal form must avoid)."""
    torch.manual_seed(5)
    _, module = _module(causal=False, k=4)
    x = torch.randn(1, 20, 16)
    changed = x.clone()
    changed[0, -1] += 1.0
    with torch.no_grad():
        assert not torch.allclose(module(changed)[0, 0], module(x)[0, 0])


def test_memory_and_overlong_sequences_are_refused() -> None:
    flat = {"n_layers": 1, "attention": "linformer", "max_seq_len": 16}
    with pytest.raises(InputError) as info:
        build_model(ArchConfig.from_dict({**flat, "memory": "xl", "mem_len": 8}))
    assert info.value.key == "memory"
    model = build_model(ArchConfig.from_dict(flat))
    with pytest.raises(InputError) as info:
        model(torch.zeros(1, 17, dtype=torch.long))
    assert info.value.key == "max_seq_len"


def test_module_macs_and_params_match_the_counter() -> None:
    torch.manual_seed(6)
    family = attention_family("linformer")
    for seed in range(30):
        rnd = random.Random(seed)
        causal = rnd.random() < 0.5
        heads = rnd.choice([1, 2])
        ctx, module = _module(causal, 4 * rnd.randint(1, 4), heads, rnd.randint(1, 12), 60)
        tokens = rnd.randint(1, 60)
        x = torch.randn(1, tokens, ctx.d_model)
        assert measured_macs(module, x)["total"] == family.macs(ctx, tokens, 0)
        assert family.params(ctx) == sum(p.numel() for p in module.parameters())


def test_model_costs_match_the_counter() -> None:
    torch.manual_seed(7)
    for seed in range(9):
        rnd = random.Random(200 + seed)
        n_layers = rnd.randint(1, 3)
        flat = {
            "n_layers": n_layers,
            "d_model": 8 * rnd.randint(1, 3),
            "vocab_size": 20,
            "max_seq_len": 50,
            "attention": [rnd.choice(["linformer", "full"]) for _ in range(n_layers)],
            "linformer_k": [rnd.randint(1, 16) for _ in range(n_layers)],
        }
        tokens, source = rnd.randint(1, 50), rnd.randint(1, 50)
        if seed % 2:
            flat.update(task="seq2seq", n_encoder_layers=2, encoder_attention="linformer")
            flat.update(encoder_linformer_k=rnd.randint(1, 16))
        cfg = ArchConfig.from_dict(flat)
        model = build_model(cfg).eval()
        args = [torch.randint(0, 20, (1, tokens))]
        if cfg.task == "seq2seq":
            args.append(torch.randint(0, 20, (1, source)))
        costs = estimate_costs(cfg, CountingConvention(tokens=tokens, source_tokens=source))
        assert costs.total_macs == measured_macs(model, *args)["total"], flat
        assert costs.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("causal", [True, False])
def test_cost_grows_linearly_in_sequence_length(causal: bool) -> None:
    ctx, _ = _module(causal, k=64, max_seq_len=8192)

    def attention_only(tokens: int) -> int:
        return linformer_macs(ctx, tokens, 0) - projection_macs(ctx, tokens, 0)

    ratio = attention_only(8192) / attention_only(4096)
    assert 1.9 < ratio < 2.05  # full attention would be 4


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(8)
    flat = {"task": "seq2seq", "n_layers": 2, "n_encoder_layers": 1, "d_model": 16, "heads": 2}
    flat = {**flat, "vocab_size": 30, "attention": "linformer", "linformer_k": 4}
    model = build_model(ArchConfig.from_dict({**flat, "tie_embeddings": False}))
    target, source = torch.randint(0, 30, (2, 19)), torch.randint(0, 30, (2, 13))
    model(target, source).logits.logsumexp(-1).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_same_seed_same_output() -> None:
    cfg = ArchConfig.from_dict(
        {"n_layers": 2, "d_model": 16, "heads": 2, "attention": "linformer", "linformer_k": 4}
    )
    torch.manual_seed(9)
    tokens = torch.randint(0, 256, (2, 21))
    outputs = []
    for _ in range(2):
        torch.manual_seed(10)
        with torch.no_grad():
            outputs.append(build_model(cfg)(tokens).logits)
    assert torch.equal(outputs[0], outputs[1])
