"""Sliding-window local attention: the window rule, equivalences, causality and exact costs."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.attention.common import projection_macs
from archsearch.models.attention.local import local_attention, local_macs, plan_local
from archsearch.models.registry import BlockContext, attention_family


def reference_attention(q, k, v, window, dilation, causal, global_tokens):
    """Softmax attention under a mask written straight from the definition, entry by entry."""
    tokens, keys = q.shape[-2], k.shape[-2]
    memory = keys - tokens
    reach = window * dilation

    def visible(i: int, j: int) -> bool:
        d = memory + i - j
        near = 0 <= d <= reach if causal else abs(d) <= reach
        return (near and d % dilation == 0) or j < global_tokens or i < global_tokens

    mask = torch.tensor([[visible(i, j) for j in range(keys)] for i in range(tokens)])
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v


CASES = [
    (tokens, memory, window, dilation, causal, g)
    for tokens, memory, window, dilation, causal, g in itertools.product(
        [1, 6, 13, 29], [0, 4, 9], [1, 2, 5], [1, 2, 3], [True, False], [0, 2]
    )
    if not (not causal and memory) and not (causal and g)
]


def test_both_layouts_match_the_definition() -> None:
    torch.manual_seed(0)
    for tokens, memory, window, dilation, causal, g in CASES:
        q = torch.randn(2, 3, tokens, 4, dtype=torch.float64)
        k, v = (torch.randn(2, 3, memory + tokens, 4, dtype=torch.float64) for _ in range(2))
        expected = reference_attention(q, k, v, window, dilation, causal, g)
        for layout in (True, False):
            got = local_attention(
                q, k, v, window=window, dilation=dilation, causal=causal, global_tokens=g,
                chunked=layout,
            )  # fmt: skip
            case = (tokens, memory, window, dilation, causal, g, layout)
            assert torch.allclose(got, expected, atol=1e-10), case


@pytest.mark.parametrize("causal", [True, False])
def test_chunked_layout_with_covering_window_is_full_attention(causal: bool) -> None:
    torch.manual_seed(1)
    q, k, v = (torch.randn(2, 2, 23, 8, dtype=torch.float64) for _ in range(3))
    got = local_attention(q, k, v, window=23, causal=causal, chunked=True)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(got, expected, atol=1e-10)


def _pair(flat: dict, **local) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A full-attention model and a local one built from the same seed (same parameter shapes)."""
    torch.manual_seed(7)
    full = build_model(ArchConfig.from_dict({**flat, "attention": "full"}))
    torch.manual_seed(7)
    windowed = build_model(ArchConfig.from_dict({**flat, "attention": "local", **local}))
    return full.eval(), windowed.eval()


def test_window_covering_the_sequence_equals_full_attention_lm() -> None:
    flat = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": 50}
    full, windowed = _pair(flat, window=20)
    tokens = torch.randint(0, 50, (2, 20))
    assert torch.allclose(windowed(tokens).logits, full(tokens).logits, atol=1e-5)


def test_window_covering_memory_and_segment_equals_full_attention_with_memory() -> None:
    flat = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": 50, "memory": "xl"}
    full, windowed = _pair({**flat, "mem_len": 8}, window=8 + 12)
    segments = torch.randint(0, 50, (3, 2, 12))
    state_full = state_local = None
    for segment in segments:
        out_full, out_local = full(segment, state_full), windowed(segment, state_local)
        state_full, state_local = out_full.state, out_local.state
        assert torch.allclose(out_local.logits, out_full.logits, atol=1e-5)


def test_window_covering_the_sequence_equals_full_attention_seq2seq() -> None:
    flat = {"task": "seq2seq", "n_layers": 1, "n_encoder_layers": 2, "d_model": 16}
    flat = {**flat, "heads": 2, "vocab_size": 40}
    full, windowed = _pair(flat, window=15, encoder_global_tokens=2)
    source, target = torch.randint(0, 40, (2, 15)), torch.randint(0, 40, (2, 11))
    assert torch.allclose(windowed(target, source).logits, full(target, source).logits, atol=1e-5)


def _logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens).logits


@pytest.mark.parametrize("window,dilation", [(3, 1), (2, 3), (40, 1)])
def test_causal_model_never_sees_future_tokens(window: int, dilation: int) -> None:
    torch.manual_seed(2)
    cfg = ArchConfig.from_dict(
        {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": 30, "attention": "local",
         "window": window, "dilation": dilation}
    )  # fmt: skip
    model = build_model(cfg).eval()
    tokens = torch.randint(0, 30, (1, 40))
    before = _logits(model, tokens)
    for t in (0, 17, 38):
        changed = tokens.clone()
        changed[0, t + 1 :] = (changed[0, t + 1 :] + 1) % 30
        after = _logits(model, changed)
        assert torch.allclose(after[0, : t + 1], before[0, : t + 1], atol=1e-6)
        assert not torch.allclose(after[0, t + 1 :], before[0, t + 1 :])


def _one_layer(flat: dict) -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model(ArchConfig.from_dict({"n_layers": 1, "d_model": 16, "heads": 2, **flat}))


def _effect(run, tokens: torch.Tensor, position: int, probe: int) -> float:
    """How much the output at ``probe`` moves when the token at ``position`` changes."""
    changed = tokens.clone()
    changed[0, position] = (changed[0, position] + 1) % 30
    with torch.no_grad():
        return (run(changed)[0, probe] - run(tokens)[0, probe]).abs().max().item()


@pytest.mark.parametrize("window,dilation", [(3, 1), (2, 3), (4, 2)])
def test_token_beyond_the_window_is_invisible(window: int, dilation: int) -> None:
    model = _one_layer(
        {"vocab_size": 30, "attention": "local", "window": window, "dilation": dilation}
    ).eval()
    tokens = torch.randint(0, 30, (1, 40))
    reach, probe = window * dilation, 35
    run = lambda x: model(x).logits  # noqa: E731
    assert _effect(run, tokens, probe - reach - 1, probe) == 0.0
    assert _effect(run, tokens, probe - reach, probe) > 0.0
    if dilation > 1:  # between the dilated keys
        assert _effect(run, tokens, probe - 1, probe) == 0.0


def test_encoder_window_looks_both_ways_and_global_tokens_see_everything() -> None:
    flat = {"task": "seq2seq", "n_encoder_layers": 1, "vocab_size": 30}
    flat = {**flat, "attention": "local", "window": 2, "dilation": 2, "encoder_global_tokens": 1}
    model = _one_layer(flat).eval()
    source = torch.randint(0, 30, (1, 32))
    run = lambda x: model.encode(x)[0][0]  # noqa: E731  (the last encoder layer's output)
    probe = 15
    assert _effect(run, source, probe + 4, probe) > 0.0  # ahead, inside the reach
    assert _effect(run, source, probe + 5, probe) == 0.0  # ahead, outside it
    assert _effect(run, source, probe - 6, probe) == 0.0  # behind, outside it
    assert _effect(run, source, 0, probe) > 0.0  # the global token is seen by all
    assert _effect(run, source, 31, 0) > 0.0  # and sees all


def test_global_tokens_refused_in_causal_layers() -> None:
    cfg = ArchConfig.from_dict(
        {"n_layers": 1, "attention": "local", "window": 4, "global_tokens": 2}
    )
    with pytest.raises(InputError) as info:
        build_model(cfg)
    assert info.value.key == "global_tokens"
    seq2seq = {"task": "seq2seq", "n_layers": 1, "n_encoder_layers": 1, "attention": "local"}
    with pytest.raises(InputError) as info:
        estimate_costs(ArchConfig.from_dict({**seq2seq, "window": 4, "global_tokens": 2}))
    assert info.value.key == "global_tokens"
    ok = ArchConfig.from_dict({**seq2seq, "window": 4, "encoder_global_tokens": 2})
    assert estimate_costs(ok).total_macs > 0


def _random_layer(rnd: random.Random, causal: bool) -> dict:
    return {
        "attention": "local",
        "heads": rnd.choice([1, 2]),
        "window": rnd.randint(1, 7),
        "dilation": rnd.randint(1, 3),
        "global_tokens": 0 if causal else rnd.randint(0, 3),
    }


def test_module_macs_and_params_match_the_counter() -> None:
    torch.manual_seed(4)
    family = attention_family("local")
    for seed in range(30):
        rnd = random.Random(seed)
        causal = rnd.random() < 0.5
        layer = _random_layer(rnd, causal)
        arch = ArchConfig.from_dict({"n_layers": 1, "d_model": 4 * rnd.randint(1, 4), **layer})
        ctx = BlockContext(layer=arch.layers[0], arch=arch, causal=causal, encoder=not causal)
        module = family.build(ctx)
        tokens, memory = rnd.randint(1, 60), rnd.randint(0, 12) if causal else 0
        x = torch.randn(1, tokens, arch.d_model)
        extra = torch.randn(1, memory, arch.d_model) if memory else None
        assert measured_macs(module, x, extra)["total"] == family.macs(ctx, tokens, memory)
        assert family.params(ctx) == sum(p.numel() for p in module.parameters())


def test_model_costs_match_the_counter() -> None:
    torch.manual_seed(5)
    for seed in range(9):
        rnd = random.Random(100 + seed)
        n_layers = rnd.randint(1, 3)
        layers = [_random_layer(rnd, True) for _ in range(n_layers)]
        flat = {key: [layer[key] for layer in layers] for key in layers[0]}
        flat.update(n_layers=n_layers, d_model=8 * rnd.randint(1, 3), vocab_size=20)
        tokens, source = rnd.randint(1, 50), rnd.randint(1, 50)
        if seed % 3 == 0:  # seq2seq, encoder with its own windows and global tokens
            enc = _random_layer(rnd, False)
            flat.update({f"encoder_{k}": v for k, v in enc.items()})
            flat.update(task="seq2seq", n_encoder_layers=rnd.randint(1, 2))
        elif seed % 3 == 1:
            flat.update(memory="xl", mem_len=rnd.randint(1, 20))
        cfg = ArchConfig.from_dict(flat)
        model = build_model(cfg).eval()
        ids = torch.randint(0, 20, (1, tokens))
        if cfg.task == "seq2seq":
            measured = measured_macs(model, ids, torch.randint(0, 20, (1, source)))
        else:
            state = None
            for _ in range(math.ceil(cfg.mem_len / tokens)):  # fill the memory
                state = model(ids, state).state
            measured = measured_macs(model, ids, state=state)
        convention = CountingConvention(tokens=tokens, source_tokens=source)
        costs = estimate_costs(cfg, convention)
        assert costs.total_macs == measured["total"], flat
        assert costs.params == sum(p.numel() for p in model.parameters())


def test_cost_grows_linearly_in_sequence_length() -> None:
    cfg = ArchConfig.from_dict({"n_layers": 1, "d_model": 16, "attention": "local", "window": 16})
    ctx = BlockContext(layer=cfg.layers[0], arch=cfg, causal=True)

    def scores(tokens: int) -> int:
        return local_macs(ctx, tokens, 0) - projection_macs(ctx, tokens, 0)

    assert plan_local(4096, 0, 16, 1, True, 0).chunked
    assert scores(8192) == 2 * scores(4096)  # linear, where full attention would be 4x
    assert plan_local(4096, 0, 16, 1, True, 0).score_cells == 4096 * 32
    assert not plan_local(20, 0, 16, 1, True, 0).chunked  # short: one dense product is cheaper


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(6)
    flat = {"task": "seq2seq", "n_layers": 2, "n_encoder_layers": 2, "d_model": 16, "heads": 2}
    flat = {**flat, "vocab_size": 30, "attention": "local", "window": 3, "dilation": [1, 2]}
    flat = {**flat, "encoder_dilation": [2, 1], "encoder_global_tokens": 2}
    model = build_model(ArchConfig.from_dict({**flat, "tie_embeddings": False}))
    target, source = torch.randint(0, 30, (2, 33)), torch.randint(0, 30, (2, 37))
    assert plan_local(33, 0, 3, 2, True, 0).chunked and plan_local(37, 0, 3, 2, False, 2).chunked
    model(target, source).logits.logsumexp(-1).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_same_seed_same_output() -> None:
    cfg = ArchConfig.from_dict(
        {"n_layers": 2, "d_model": 16, "heads": 2, "attention": "local", "window": 3}
    )
    torch.manual_seed(9)
    tokens = torch.randint(0, 256, (2, 40))
    outputs = []
    for _ in range(2):
        torch.manual_seed(8)
        outputs.append(_logits(build_model(cfg), tokens))
    assert torch.equal(outputs[0], outputs[1])
