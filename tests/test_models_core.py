"""The model core: full attention, dense FFN, the language models of lm.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs

VOCAB = 48


def config(**overrides: Any) -> ArchConfig:
    base: dict[str, Any] = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": VOCAB}
    base.update(overrides)
    return ArchConfig.from_dict(base)


def seq2seq(**overrides: Any) -> ArchConfig:
    return config(task="seq2seq", n_encoder_layers=2, **overrides)


def model_for(cfg: ArchConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg)


def tokens(length: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def logits(model: torch.nn.Module, target: torch.Tensor, source: torch.Tensor | None = None):
    return (model(target) if source is None else model(target, source)).logits


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- causality -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
@pytest.mark.parametrize("t", [0, 3, 6])
@torch.no_grad()
def test_future_tokens_never_change_earlier_logits(task: str, t: int) -> None:
    cfg = config() if task == "causal_lm" else seq2seq()
    model = model_for(cfg)
    source = tokens(5, seed=9) if task == "seq2seq" else None
    target = tokens(8, seed=1)
    changed = target.clone()
    changed[:, t + 1 :] = (changed[:, t + 1 :] + 7) % VOCAB
    a, b = logits(model, target, source), logits(model, changed, source)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


@torch.no_grad()
def test_seq2seq_decoder_sees_the_whole_source() -> None:
    """The encoder is bidirectional and cross-attention is full: the last source token
    reaches the first target position."""
    model = model_for(seq2seq())
    source, target = tokens(6, seed=2), tokens(4, seed=3)
    changed = source.clone()
    changed[:, -1] = (changed[:, -1] + 5) % VOCAB
    a, b = logits(model, target, source), logits(model, target, changed)
    assert not torch.allclose(a[:, 0], b[:, 0])


# ---- ALBERT: factorized embedding and cross-layer sharing ----------------------------------


@pytest.mark.parametrize("tie", [True, False])
def test_factorized_embedding_changes_params_as_the_formula_says(tie: bool) -> None:
    d, e = 32, 8
    plain = model_for(config(d_model=d, tie_embeddings=tie))
    factored_cfg = config(d_model=d, embed_dim=e, tie_embeddings=tie)
    factored = model_for(factored_cfg)
    tables = 1 if tie else 2  # input table, plus the output layer when untied
    before = tables * VOCAB * d
    after = tables * VOCAB * e + 2 * e * d  # E -> d in, d -> E before the logits
    assert n_params(factored) - n_params(plain) == after - before
    assert factored.embed.table.weight.shape == (VOCAB, e)
    assert estimate_costs(factored_cfg).params == n_params(factored)


def test_factorized_model_trains() -> None:
    model = model_for(config(d_model=32, embed_dim=8))
    batch = tokens(12, seed=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        out = model(batch[:, :-1]).logits
        loss = F.cross_entropy(out.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("n", [2, 4])
def test_shared_layers_cost_one_block(n: int) -> None:
    one = model_for(config(n_layers=1))
    shared_cfg = config(n_layers=n, share_layers=True)
    shared = model_for(shared_cfg)
    assert n_params(shared) == n_params(one)
    assert estimate_costs(shared_cfg).params == n_params(one)
    assert len({id(block) for block in shared.blocks}) == 1
    # and the block really is what the difference between 1 and 2 unshared layers costs
    block_params = n_params(model_for(config(n_layers=2))) - n_params(one)
    assert n_params(shared) == n_params(one.embed) + block_params + n_params(one.head.norm)


@torch.no_grad()
def test_shared_layers_apply_the_same_block_n_times() -> None:
    model = model_for(config(n_layers=3, share_layers=True))
    batch = tokens(7, seed=5)
    x = model.embed(batch)
    block = model.blocks[0]
    for _ in range(3):
        x, _ = block(x)
    torch.testing.assert_close(model(batch).logits, model.head(x))


def test_seq2seq_shared_layers_share_within_each_stack() -> None:
    model = model_for(seq2seq(share_layers=True))
    assert len({id(b) for b in model.encoder}) == 1 and len({id(b) for b in model.decoder}) == 1
    assert model.encoder[0] is not model.decoder[0]


@pytest.mark.parametrize("embed_dim", [None, 8])
def test_tied_and_untied_output_layer(embed_dim: int | None) -> None:
    tied = model_for(config(embed_dim=embed_dim))
    untied = model_for(config(embed_dim=embed_dim, tie_embeddings=False))
    assert tied.head.logits.weight is tied.embed.table.weight
    assert untied.head.logits.weight is not untied.embed.table.weight
    width = embed_dim or 16
    assert n_params(untied) - n_params(tied) == VOCAB * width


# ---- heterogeneous layers (HAT-style) ------------------------------------------------------


@torch.no_grad()
def test_per_layer_heads_widths_and_ffn_build_and_cost_correctly() -> None:
    heads, attn_dim, ffn_dim = [1, 2, 4], [8, 16, 24], [8, 40, 64]
    cfg = config(n_layers=3, d_model=16, heads=heads, attn_dim=attn_dim, ffn_dim=ffn_dim)
    model = model_for(cfg)
    for block, h, a, f in zip(model.blocks, heads, attn_dim, ffn_dim, strict=True):
        assert block.attn.proj.heads == h
        assert block.attn.proj.q.weight.shape == (a, 16)
        assert block.attn.proj.out.weight.shape == (16, a)
        assert block.ffn.up.weight.shape == (f, 16)
    costs = estimate_costs(cfg, CountingConvention(tokens=9))
    assert costs.params == n_params(model)
    assert costs.total_macs == measured_macs(model, tokens(9, batch=1))["total"]
    expected_attention = sum(4 * 16 * a * 9 + 2 * 9 * 9 * a for a in attn_dim)
    expected_ffn = sum(2 * 16 * f * 9 for f in ffn_dim)
    assert costs.macs_by_part["attention"] == expected_attention
    assert costs.macs_by_part["ffn"] == expected_ffn


# ---- gradients, determinism, validation ----------------------------------------------------


@pytest.mark.parametrize(
    "cfg",
    [
        config(),
        config(embed_dim=8, tie_embeddings=False),
        config(n_layers=3, share_layers=True),
        config(heads=[1, 4], attn_dim=[8, 24], ffn_dim=[12, 20]),
        seq2seq(embed_dim=8),
    ],
    ids=["plain", "albert_untied", "shared", "heterogeneous", "seq2seq"],
)
def test_gradients_reach_every_parameter(cfg: ArchConfig) -> None:
    model = model_for(cfg)
    target = tokens(6, seed=6)
    out = model(target, tokens(5, seed=7)) if cfg.task == "seq2seq" else model(target)
    loss = F.cross_entropy(out.logits.reshape(-1, VOCAB), tokens(6, seed=8).reshape(-1))
    (loss + out.aux_loss).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
@torch.no_grad()
def test_same_seed_same_output(task: str) -> None:
    cfg = config(dropout=0.1) if task == "causal_lm" else seq2seq(dropout=0.1)
    source = tokens(5, seed=11) if task == "seq2seq" else None
    target = tokens(6, seed=10)
    runs = []
    for seed in (3, 3, 4):
        model = model_for(cfg, seed=seed)
        model.eval()
        runs.append(logits(model, target, source))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    assert not torch.allclose(runs[0], runs[2])


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"d_model": 12, "heads": 4}, "heads"),  # head width 3: rotary needs pairs
        ({"attn_dim": [8, 6], "heads": 2}, "heads"),  # layer 1: head width 3
        # decoder head width 12 / 2 = 6 is fine, the encoder's 12 / 4 = 3 is not
        ({"task": "seq2seq", "n_encoder_layers": 1, "encoder_heads": 4, "d_model": 12}, None),
    ],
)
def test_build_model_rejects_odd_head_width(overrides: dict[str, Any], key: str | None) -> None:
    base = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": VOCAB, **overrides}
    key = key or "encoder_heads"
    cfg = ArchConfig.from_dict(base)
    with pytest.raises(InputError) as info:
        build_model(cfg)
    assert info.value.key == key
    with pytest.raises(InputError):
        estimate_costs(cfg)


def test_config_rejects_width_not_divisible_by_heads() -> None:
    with pytest.raises(InputError) as info:
        config(d_model=16, heads=3)
    assert info.value.key == "heads"


def test_seeded_build_is_reproducible_and_leaves_the_callers_stream_alone() -> None:
    cfg = config(attention="performer", performer_features=8)  # random features: a buffer
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = build_model(cfg, seed=5)
    assert torch.equal(torch.rand(1), before)  # the caller's stream went on as if untouched
    second = build_model(cfg, seed=5)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    torch.manual_seed(5)
    unseeded = build_model(cfg)  # the same as seeding the global generator first
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), unseeded.state_dict().values(), strict=True)
    )
