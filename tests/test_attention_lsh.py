"""Reformer LSH attention: equivalence with full shared-QK attention, the documented key sets
(checked against a token-by-token reference), exact causality, costs."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.config import LayerConfig
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.attention.common import merge_heads, split_heads
from archsearch.models.attention.lsh import bucket_count, hash_buckets, lsh_attention
from archsearch.models.positions import rotary
from archsearch.models.registry import BlockContext, attention_family


def _module(causal: bool, bucket_size: int, hashes: int, heads: int = 2, d_model: int = 16):
    layer = LayerConfig(
        attention="lsh", heads=heads, lsh_bucket_size=bucket_size, lsh_hashes=hashes
    )
    arch = ArchConfig(layers=(layer,), d_model=d_model, max_seq_len=64)
    torch.manual_seed(0)
    return attention_family("lsh").build(BlockContext(layer=layer, arch=arch, causal=causal))


def _lm(seed: int = 0, **overrides) -> torch.nn.Module:
    arch = {
        "vocab_size": 40,
        "max_seq_len": 64,
        "d_model": 32,
        "n_layers": 2,
        "heads": 2,
        "attention": "lsh",
        "lsh_bucket_size": 4,
        "lsh_hashes": 2,
        **overrides,
    }
    torch.manual_seed(seed)
    return build_model(ArchConfig.from_dict(arch)).eval()


def _shared_qk_reference(q: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Dense shared-QK softmax attention; a token sees itself only when it sees nothing else."""
    t, d = q.shape[-2:]
    keys = q / q.norm(dim=-1, keepdim=True)
    scores = q @ keys.transpose(-1, -2) / math.sqrt(d)
    if causal:
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, -math.inf)
    scores = scores.masked_fill(torch.eye(t, dtype=torch.bool), -1e5)
    return torch.softmax(scores, dim=-1) @ v


def _keys_seen(buckets: list[int], chunk: int, causal: bool) -> list[list[int]]:
    """The documented key set of every query, token by token (no chunked tensors)."""
    t = len(buckets)
    order = sorted(range(t), key=lambda i: (buckets[i], i))
    rank = {token: place for place, token in enumerate(order)}
    n = math.ceil(t / chunk)
    seen = []
    for i in range(t):
        if causal:  # its `chunk` latest same-bucket predecessors, and itself
            same = [j for j in range(i + 1) if buckets[j] == buckets[i]]
            seen.append(same[-(chunk + 1) :])
        else:  # everything in its sorted chunk and the previous one (wrapping round)
            mine = rank[i] // chunk
            chunks = {mine, (mine - 1) % n}
            seen.append([j for j in range(t) if rank[j] // chunk in chunks])
    return seen


def _token_reference(
    q: torch.Tensor, v: torch.Tensor, buckets: torch.Tensor, chunk: int, causal: bool
) -> torch.Tensor:
    """lsh_attention computed query by query from the key sets above."""
    b, h, _, d = q.shape
    keys = q / q.norm(dim=-1, keepdim=True)
    out = torch.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            outputs, masses = [], []
            for r in range(buckets.shape[2]):
                rows, row_mass = [], []
                for i, seen in enumerate(_keys_seen(buckets[bi, hi, r].tolist(), chunk, causal)):
                    s = torch.stack(
                        [
                            torch.tensor(-1e5)
                            if j == i
                            else q[bi, hi, i] @ keys[bi, hi, j] / d**0.5
                            for j in seen
                        ]
                    )
                    rows.append(torch.softmax(s, 0) @ v[bi, hi, seen])
                    row_mass.append(torch.logsumexp(s, 0))
                outputs.append(torch.stack(rows))
                masses.append(torch.stack(row_mass))
            weights = torch.softmax(torch.stack(masses), dim=0)
            out[bi, hi] = (weights.unsqueeze(-1) * torch.stack(outputs)).sum(0)
    return out


# ---- equivalences ----------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hashes", [1, 3])
def test_one_bucket_equals_full_shared_qk_attention(causal: bool, hashes: int) -> None:
    module = _module(causal, bucket_size=32, hashes=hashes)
    x = torch.randn(2, 20, 16)
    q = rotary(split_heads(module.q(x), 2))
    v = split_heads(module.v(x), 2)
    expected = module.out(merge_heads(_shared_qk_reference(q, v, causal)))
    torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("tokens", "chunk", "n_buckets", "rounds"), [(23, 2, 4, 2), (31, 3, 6, 3)])
def test_chunked_attention_equals_token_by_token_reference(
    causal: bool, tokens: int, chunk: int, n_buckets: int, rounds: int
) -> None:
    """Sorting, padding, chunk windows, masks and round weighting against the plain rule."""
    g = torch.Generator().manual_seed(tokens + chunk)
    q = torch.randn(2, 2, tokens, 8, generator=g)
    v = torch.randn(2, 2, tokens, 8, generator=g)
    rotations = torch.randn(2, 8, rounds, n_buckets // 2, generator=g)
    buckets = hash_buckets(q, rotations, n_buckets)
    assert len(buckets.unique()) > 2  # several buckets...
    assert buckets[0, 0, 0].bincount().max() > chunk + 1  # ...and the causal window's cap
    assert tokens % chunk  # ...and padding
    expected = _token_reference(q, v, buckets, chunk, causal)
    torch.testing.assert_close(lsh_attention(q, v, buckets, chunk, causal), expected)


def test_hashing_is_angular() -> None:
    """Bucket depends on direction only; the opposite direction lands half the buckets away."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 50, 8, generator=g)
    rotations = torch.randn(2, 8, 3, 4, generator=g)
    buckets = hash_buckets(q, rotations, 8)
    assert buckets.shape == (1, 2, 3, 50)
    assert buckets.min() >= 0 and buckets.max() < 8
    assert torch.equal(hash_buckets(3.5 * q, rotations, 8), buckets)
    assert torch.equal(hash_buckets(-q, rotations, 8), (buckets + 4) % 8)


def test_bucket_count() -> None:
    assert bucket_count(30, 32, 256) == 1  # one chunk holds the sequence
    assert bucket_count(33, 32, 256) == 2
    assert bucket_count(100, 32, 256) == 4  # ceil(100 / 32) = 4
    assert bucket_count(70, 10, 256) == 8  # 7, rounded up to even
    assert bucket_count(300, 32, 64) == 2  # capped by max_seq_len's count


# ---- the model -------------------------------------------------------------------------------


def test_causal_lm_never_looks_ahead() -> None:
    """Strict causality with many small buckets, where sorting by bucket moves tokens around."""
    model = _lm()
    torch.manual_seed(1)
    tokens = torch.randint(0, 40, (3, 48))
    base = model(tokens).logits
    for t in (0, 3, 11, 25, 46):
        changed = tokens.clone()
        changed[:, t + 1 :] = torch.randint(0, 40, changed[:, t + 1 :].shape)
        changed[:, t + 1] = (tokens[:, t + 1] + 1) % 40
        other = model(changed).logits
        torch.testing.assert_close(other[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
        assert (other[:, t + 1 :] - base[:, t + 1 :]).abs().max() > 1e-4


def test_causal_module_ignores_arbitrary_future_inputs() -> None:
    """Same keys, same scores; only rounding may differ, as a key's slot in its chunk moves."""
    module = _module(causal=True, bucket_size=3, hashes=2)
    x = torch.randn(2, 40, 16)
    base = module(x)
    for t in (4, 20, 33):
        changed = x.clone()
        changed[:, t + 1 :] = 5 * torch.randn_like(changed[:, t + 1 :])
        torch.testing.assert_close(
            module(changed)[:, : t + 1], base[:, : t + 1], rtol=1e-5, atol=1e-6
        )


def test_gradients_reach_every_parameter() -> None:
    model = _lm().train()
    tokens = torch.randint(0, 40, (2, 24))
    F.cross_entropy(model(tokens).logits.flatten(0, 1), tokens.flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.isfinite(p.grad).all(), name


def test_same_seed_same_model_and_rotations_are_a_buffer() -> None:
    tokens = torch.randint(0, 40, (2, 30))
    a, b, c = _lm(seed=3), _lm(seed=3), _lm(seed=4)
    assert torch.equal(a(tokens).logits, b(tokens).logits)
    assert torch.equal(a(tokens).logits, a(tokens).logits)  # hashing is fixed, not redrawn
    assert not torch.equal(a.blocks[0].attn.rotations, c.blocks[0].attn.rotations)
    assert all("rotations" not in name for name, _ in a.named_parameters())
    assert "blocks.0.attn.rotations" in a.state_dict()


def test_memory_is_refused_with_the_key() -> None:
    arch = ArchConfig.from_dict(
        {
            "vocab_size": 40,
            "d_model": 32,
            "n_layers": 1,
            "heads": 2,
            "attention": "lsh",
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
    family = attention_family("lsh")
    for _ in range(25):
        heads = rng.choice([1, 2, 4])
        layer = LayerConfig(
            attention="lsh",
            heads=heads,
            attn_dim=heads * rng.choice([2, 4, 8]),
            lsh_bucket_size=rng.choice([1, 3, 8, 16, 64]),
            lsh_hashes=rng.choice([1, 2, 4]),
        )
        d_model = rng.choice([8, 16, 24])
        arch = ArchConfig(layers=(layer,), d_model=d_model, max_seq_len=rng.choice([16, 64, 128]))
        ctx = BlockContext(layer=layer, arch=arch, causal=rng.random() < 0.6)
        tokens = rng.choice([1, 2, 9, 30, 64, 100, 150])  # beyond max_seq_len too
        torch.manual_seed(0)
        module = family.build(ctx)
        measured = measured_macs(module, torch.randn(1, tokens, d_model))["total"]
        assert family.macs(ctx, tokens, 0) == measured, (ctx.causal, tokens, layer, arch)
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
            "attention": rng.choice(["lsh", ["lsh", "full"][:n_layers]]),
            "lsh_bucket_size": rng.choice([4, 8, 32]),
            "lsh_hashes": rng.choice([1, 2]),
            "ffn_ratio": 2.0,
            "embed_dim": rng.choice([None, 8]),
        }
        if task == "seq2seq":
            arch["n_encoder_layers"] = 1
            if isinstance(arch["attention"], list):
                arch["encoder_attention"] = "lsh"
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
