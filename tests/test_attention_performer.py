"""Performer (FAVOR+) attention: accuracy against softmax, exact causality, costs."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.config import LayerConfig
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.attention.performer import (
    causal_chunk,
    favor_attention,
    orthogonal_features,
)
from archsearch.models.registry import BlockContext, attention_family


def _heads(seed: int, shape: tuple[int, ...], scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [scale * torch.randn(shape, generator=g) for _ in range(3)]


def _features(seed: int, heads: int, m: int, d: int) -> torch.Tensor:
    return orthogonal_features(heads, m, d, torch.Generator().manual_seed(seed))


def _lm(seed: int = 0, **overrides) -> torch.nn.Module:
    arch = {
        "vocab_size": 40,
        "max_seq_len": 64,
        "d_model": 32,
        "n_layers": 2,
        "heads": 2,
        "attention": "performer",
        "performer_features": 16,
        **overrides,
    }
    torch.manual_seed(seed)
    return build_model(ArchConfig.from_dict(arch)).eval()


# ---- the estimator ---------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_error_against_softmax_falls_as_features_grow(causal: bool) -> None:
    """FAVOR+ is an estimator of softmax attention: more features, less error (5 seeds)."""
    errors = {}
    for m in (16, 256, 1024):
        total = 0.0
        for seed in range(5):
            q, k, v = _heads(seed, (1, 2, 64, 16))
            q, k = 0.5 * q, 0.5 * k  # moderate logits, where the estimator is usable
            exact = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            approx = favor_attention(q, k, v, _features(100 + seed, 2, m, 16), causal)
            total += (approx - exact).abs().mean().item()
        errors[m] = total / 5
    assert errors[16] > 2.0 * errors[256] > 2.0 * 1.3 * errors[1024]
    assert errors[1024] < 0.03


def test_features_are_orthogonal_within_blocks_and_gaussian_in_norm() -> None:
    w = _features(0, 3, 20, 8)  # blocks of 8, 8, 4 rows
    assert w.shape == (3, 20, 8)
    for start in (0, 8, 16):
        block = w[:, start : start + 8]
        gram = block @ block.transpose(-1, -2)
        off_diagonal = gram - torch.diag_embed(torch.diagonal(gram, dim1=-2, dim2=-1))
        assert off_diagonal.abs().max() < 1e-4
    norms = w.norm(dim=-1)
    assert norms.std() > 0.2  # rescaled by chi-distributed norms, not unit rows
    assert 2.0 < norms.mean() < 3.6  # E|N(0, I_8)| is about 2.74


@pytest.mark.parametrize("chunk", [3, 16, 40])
def test_causal_chunks_equal_non_causal_attention_over_each_prefix(chunk: int) -> None:
    """Query t of the causal form is the non-causal form over tokens 0..t, for any chunking
    (independent of how the running state is carried), even for large logits."""
    q, k, v = _heads(1, (2, 2, 40, 8), scale=3.0)
    w = _features(2, 2, 24, 8)
    causal = favor_attention(q, k, v, w, True, chunk=chunk)
    assert torch.isfinite(causal).all()
    prefix = torch.stack(
        [
            favor_attention(q[:, :, : t + 1], k[:, :, : t + 1], v[:, :, : t + 1], w, False)[:, :, t]
            for t in range(40)
        ],
        dim=2,
    )
    torch.testing.assert_close(causal, prefix, rtol=1e-4, atol=1e-5)


def test_chunk_choice_minimises_macs_and_covers_short_sequences() -> None:
    assert causal_chunk(30, 64, 32) == 30  # one chunk: the quadratic form is cheapest
    assert causal_chunk(512, 64, 32) < 512  # long sequences: chunked prefix sums
    assert causal_chunk(1, 8, 8) == 1


# ---- the model -------------------------------------------------------------------------------


def test_causal_lm_never_looks_ahead() -> None:
    model = _lm(performer_features=8)  # 48 tokens with few features: several chunks
    torch.manual_seed(1)
    tokens = torch.randint(0, 40, (2, 48))
    base = model(tokens).logits
    for t in (0, 5, 17, 40):
        changed = tokens.clone()
        changed[:, t + 1 :] = torch.randint(0, 40, changed[:, t + 1 :].shape)
        changed[:, t + 1] = (tokens[:, t + 1] + 1) % 40
        other = model(changed).logits
        torch.testing.assert_close(other[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        assert (other[:, t + 1 :] - base[:, t + 1 :]).abs().max() > 1e-4


def test_causal_module_is_exact_bit_for_bit() -> None:
    """The running-max stabilisers only use the past, so even rounding cannot leak the future."""
    layer = LayerConfig(attention="performer", heads=2, performer_features=8)
    ctx = BlockContext(layer=layer, arch=ArchConfig(layers=(layer,), d_model=16), causal=True)
    torch.manual_seed(0)
    module = attention_family("performer").build(ctx)
    x = torch.randn(2, 100, 16)
    base = module(x)
    for t in (3, 40, 77):
        changed = x.clone()
        changed[:, t + 1 :] = 5 * torch.randn_like(changed[:, t + 1 :])
        assert torch.equal(module(changed)[:, : t + 1], base[:, : t + 1])


def test_encoder_is_bidirectional() -> None:
    torch.manual_seed(0)
    arch = ArchConfig.from_dict(
        {
            "task": "seq2seq",
            "vocab_size": 40,
            "d_model": 32,
            "n_layers": 1,
            "n_encoder_layers": 1,
            "heads": 2,
            "attention": "performer",
            "performer_features": 16,
        }
    )
    model = build_model(arch).eval()
    source = torch.randint(0, 40, (1, 12))
    (context,), _ = model.encode(source)  # the last encoder layer's output
    changed = source.clone()
    changed[0, -1] = (source[0, -1] + 1) % 40
    (moved,), _ = model.encode(changed)
    assert (moved[0, 0] - context[0, 0]).abs().max() > 1e-5


def test_gradients_reach_every_parameter() -> None:
    model = _lm().train()
    tokens = torch.randint(0, 40, (2, 20))
    out = model(tokens)
    F.cross_entropy(out.logits.flatten(0, 1), tokens.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_seed_same_model_and_features_are_a_buffer() -> None:
    tokens = torch.randint(0, 40, (1, 24))
    a, b, c = _lm(seed=3), _lm(seed=3), _lm(seed=4)
    assert torch.equal(a(tokens).logits, b(tokens).logits)
    assert torch.equal(a(tokens).logits, a(tokens).logits)  # no redraw between calls
    attn_a, attn_c = a.blocks[0].attn, c.blocks[0].attn
    assert not torch.equal(attn_a.features, attn_c.features)
    assert "features" in dict(attn_a.named_buffers())
    assert all("features" not in name for name, _ in a.named_parameters())
    assert "blocks.0.attn.features" in a.state_dict()


def test_memory_is_refused_with_the_key() -> None:
    arch = ArchConfig.from_dict(
        {
            "vocab_size": 40,
            "d_model": 32,
            "n_layers": 1,
            "heads": 2,
            "attention": "performer",
            "memory": "xl",
            "mem_len": 8,
        }
    )
    with pytest.raises(InputError) as info:
        build_model(arch)
    assert info.value.key == "memory"


# ---- costs -----------------------------------------------------------------------------------


def test_module_macs_and_params_are_exact_over_random_configs() -> None:
    rng = random.Random(0)
    family = attention_family("performer")
    for _ in range(20):
        heads = rng.choice([1, 2, 4])
        head_dim = rng.choice([2, 4, 8, 16])
        d_model = rng.choice([8, 16, 24])
        layer = LayerConfig(
            attention="performer",
            heads=heads,
            attn_dim=heads * head_dim,
            performer_features=rng.choice([1, 3, 8, 33, 64]),
        )
        arch = ArchConfig(layers=(layer,), d_model=d_model, max_seq_len=300)
        ctx = BlockContext(layer=layer, arch=arch, causal=rng.random() < 0.7)
        tokens = rng.choice([1, 5, 17, 30, 64, 150])
        torch.manual_seed(0)
        module = family.build(ctx)
        measured = measured_macs(module, torch.randn(1, tokens, d_model))["total"]
        assert family.macs(ctx, tokens, 0) == measured, (ctx.causal, tokens, layer)
        assert family.params(ctx) == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
def test_model_costs_match_measured_over_random_configs(task: str) -> None:
    rng = random.Random(1 if task == "causal_lm" else 2)
    for _ in range(6):
        n_layers = rng.choice([1, 2])
        arch = {
            "task": task,
            "vocab_size": 30,
            "max_seq_len": 96,
            "d_model": rng.choice([16, 32]),
            "n_layers": n_layers,
            "heads": rng.choice([1, 2, 4]),
            "attention": rng.choice(["performer", ["performer", "full"][:n_layers]]),
            "performer_features": rng.choice([4, 16, 40]),
            "ffn_ratio": 2.0,
            "embed_dim": rng.choice([None, 8]),
        }
        if task == "seq2seq":
            arch["n_encoder_layers"] = 1
            if isinstance(arch["attention"], list):
                arch["encoder_attention"] = "performer"
        cfg = ArchConfig.from_dict(arch)
        tokens, source = rng.choice([9, 30, 96]), rng.choice([7, 30, 80])
        torch.manual_seed(0)
        model = build_model(cfg)
        target = torch.randint(0, 30, (1, tokens))
        if task == "seq2seq":
            measured = measured_macs(model, target, torch.randint(0, 30, (1, source)))
            convention = CountingConvention(tokens=tokens, source_tokens=source)
        else:
            measured = measured_macs(model, target)
            convention = CountingConvention(tokens=tokens)
        costs = estimate_costs(cfg, convention)
        assert costs.total_macs == measured["total"], arch
        assert costs.params == sum(p.numel() for p in model.parameters()), arch


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_stay_finite_when_a_query_misses_every_key(causal: bool) -> None:
    """A query whose largest random feature is tiny for every key it sees: without a floor
    under the key features its normaliser underflows to 0 and backward turns to NaN (a brief
    run of a Performer model failed so at step 72)."""
    features = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])  # [heads, m, d]
    direction = torch.tensor([1.0, 0.0])
    q = (60.0 * direction).expand(1, 1, 3, 2).clone().requires_grad_()  # picks feature 0
    k = (-60.0 * direction).expand(1, 1, 3, 2).clone().requires_grad_()  # feature 1 only
    v = (10 * torch.randn(1, 1, 3, 2, generator=torch.Generator().manual_seed(0))).requires_grad_()
    out = favor_attention(q, k, v, features, causal)
    out.sum().backward()
    for tensor in (q, k, v):
        assert torch.isfinite(tensor.grad).all()
    # the keys are alike, so softmax attention averages their values (over the prefix if causal)
    if causal:
        expected = v.detach().cumsum(-2) / torch.arange(1, 4).view(1, 1, 3, 1)
    else:
        expected = v.detach().mean(-2, keepdim=True).expand(1, 1, 3, 2)
    torch.testing.assert_close(out.detach(), expected, rtol=1e-4, atol=1e-5)
