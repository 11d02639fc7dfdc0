"""Scaling-Transformer sparse FFN: dense equivalence, unit picking, gradients, honest costs."""

from __future__ import annotations

import random

import pytest
import torch

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.config import LayerConfig
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.ffn.dense import DenseFFN
from archsearch.models.ffn.sparse import (
    SparseFFN,
    controller_rank,
    sparse_down,
    sparse_macs,
    sparse_params,
    sparse_up,
)
from archsearch.models.registry import BlockContext


def _ctx(d_model: int = 16, **layer: object) -> BlockContext:
    config = LayerConfig(ffn="sparse", **layer)  # type: ignore[arg-type]
    arch = ArchConfig(layers=(config,), d_model=d_model)
    return BlockContext(layer=config, arch=arch, causal=True)


def _sparse_config(**overrides: object) -> ArchConfig:
    base = {"n_layers": 2, "d_model": 16, "heads": 2, "ffn": "sparse", "ffn_dim": 32}
    return ArchConfig.from_dict({**base, **overrides})


def _masked_dense(ffn: SparseFFN, x: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Reference: the full dense FFN with every unit not picked zeroed before the down-proj."""
    flat = x.reshape(-1, x.shape[-1])
    hidden = ffn.act(flat @ ffn.up.weight.t())
    mask = torch.zeros_like(hidden).scatter_(1, units, 1.0)
    return ((hidden * mask) @ ffn.down.weight.t()).view_as(x)


def test_sparsity_one_model_equals_dense_model() -> None:
    torch.manual_seed(0)
    dense = build_model(_sparse_config(ffn="dense")).eval()
    sparse = build_model(_sparse_config(sparsity=1)).eval()
    sparse.load_state_dict(dense.state_dict(), strict=True)  # same parameters: no controller
    tokens = torch.randint(0, 256, (2, 10))
    assert torch.equal(sparse(tokens).logits, dense(tokens).logits)
    sparse.train()  # nothing is picked at sparsity 1, so training mode is dense too
    dense.train()
    assert torch.equal(sparse(tokens).logits, dense(tokens).logits)


def test_output_equals_dense_ffn_restricted_to_picked_units() -> None:
    torch.manual_seed(1)
    for sparsity, activation in ((2, "gelu"), (4, "relu"), (8, "gelu")):
        ffn = SparseFFN(_ctx(d_model=16, ffn_dim=32, sparsity=sparsity, activation=activation))
        x = torch.randn(3, 7, 16)
        ffn.eval()
        units, gate = ffn.pick(x.reshape(-1, 16))
        assert gate is None
        # one unit per block, the controller's argmax within the block
        logits = ffn.controller(x.reshape(-1, 16)).view(21, 32 // sparsity, sparsity)
        expected = logits.argmax(-1) + torch.arange(32 // sparsity) * sparsity
        assert torch.equal(units, expected)
        assert torch.allclose(ffn(x)[0], _masked_dense(ffn, x, units), atol=1e-5)
        # training: Gumbel-perturbed picks, the straight-through gate is exactly 1 going forward
        ffn.train()
        torch.manual_seed(2)
        y, _ = ffn(x)
        torch.manual_seed(2)
        train_units, gate = ffn.pick(x.reshape(-1, 16))
        assert gate is not None and torch.equal(gate, torch.ones_like(gate))
        assert torch.allclose(y, _masked_dense(ffn, x, train_units), atol=1e-5)


def test_training_picks_explore_beyond_the_argmax() -> None:
    torch.manual_seed(3)
    ffn = SparseFFN(_ctx(d_model=16, ffn_dim=32, sparsity=4))
    flat = torch.randn(64, 16)
    eval_units, _ = ffn.eval().pick(flat)
    train_units, _ = ffn.train().pick(flat)
    assert not torch.equal(eval_units, train_units)
    blocks = torch.arange(8) * 4
    assert ((train_units - blocks) >= 0).all() and ((train_units - blocks) < 4).all()


def test_sparse_projections_gradcheck() -> None:
    torch.manual_seed(4)
    tokens, d, blocks, sparsity = 9, 5, 3, 4
    units = torch.randint(0, sparsity, (tokens, blocks)) + torch.arange(blocks) * sparsity
    x = torch.randn(tokens, d, dtype=torch.double, requires_grad=True)
    w_up = torch.randn(blocks * sparsity, d, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sparse_up(a, b, units), (x, w_up))
    a = torch.randn(tokens, blocks, dtype=torch.double, requires_grad=True)
    w_down = torch.randn(d, blocks * sparsity, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p, q: sparse_down(p, q, units), (a, w_down))


def test_gradients_reach_every_parameter_including_the_controller() -> None:
    torch.manual_seed(5)
    model = build_model(_sparse_config(sparsity=4)).train()
    tokens = torch.randint(0, 256, (2, 12))
    logits = model(tokens).logits
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    names = [name for name, _ in model.named_parameters()]
    assert any("ffn.controller" in name for name in names)
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_causal() -> None:
    torch.manual_seed(6)
    model = build_model(_sparse_config(sparsity=2)).eval()
    tokens = torch.randint(0, 256, (2, 12))
    changed = tokens.clone()
    changed[:, 6:] = torch.randint(0, 256, (2, 6))
    with torch.no_grad():
        before, after = model(tokens).logits, model(changed).logits
    assert torch.allclose(before[:, :6], after[:, :6], atol=1e-6)
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_same_seed_same_output() -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model(_sparse_config(sparsity=4)).train()  # Gumbel noise included
        outputs.append(model(torch.randint(0, 256, (2, 9))).logits)
    assert torch.equal(outputs[0], outputs[1])


def test_hidden_width_must_divide_by_sparsity() -> None:
    bad = _sparse_config(ffn_dim=30, sparsity=4)
    with pytest.raises(InputError) as caught:
        build_model(bad)
    assert caught.value.key == "sparsity"
    with pytest.raises(InputError) as caught:
        estimate_costs(bad)
    assert caught.value.key == "sparsity"
    seq2seq = ArchConfig.from_dict(
        {
            "task": "seq2seq",
            "n_layers": 1,
            "n_encoder_layers": 1,
            "d_model": 16,
            "heads": 2,
            "ffn_dim": 32,
            "encoder_ffn": "sparse",
            "encoder_sparsity": 3,
        }
    )
    with pytest.raises(InputError) as caught:
        build_model(seq2seq)
    assert caught.value.key == "encoder.sparsity"


def test_macs_fall_with_sparsity_as_measured() -> None:
    torch.manual_seed(8)
    x = torch.randn(1, 10, 16)
    dense = measured_macs(DenseFFN(_ctx(d_model=16, ffn_dim=64)), x)["total"]
    for sparsity in (1, 2, 4, 8, 16):
        ctx = _ctx(d_model=16, ffn_dim=64, sparsity=sparsity)
        counts = measured_macs(SparseFFN(ctx).eval(), x)
        controller = counts.get("SparseFFN.controller", 0)
        assert controller == (10 * controller_rank(16) * (16 + 64) if sparsity > 1 else 0)
        assert counts["total"] - controller == dense // sparsity
        assert counts["total"] == sparse_macs(ctx, 10, 0)
        assert sum(p.numel() for p in SparseFFN(ctx).parameters()) == sparse_params(ctx)


def test_module_costs_over_random_configs() -> None:
    torch.manual_seed(9)
    rng = random.Random(9)
    for _ in range(15):
        sparsity = rng.choice([1, 2, 3, 4, 8])
        d_model = rng.choice([4, 16, 24, 40])
        ctx = _ctx(
            d_model=d_model,
            ffn_dim=sparsity * rng.randint(1, 8),
            sparsity=sparsity,
            activation=rng.choice(["gelu", "relu"]),
        )
        ffn = SparseFFN(ctx).train(rng.random() < 0.5)
        steps = rng.randint(1, 20)
        assert measured_macs(ffn, torch.randn(1, steps, d_model))["total"] == sparse_macs(
            ctx, steps, 0
        )
        assert sum(p.numel() for p in ffn.parameters()) == sparse_params(ctx)


def test_model_costs_over_random_configs() -> None:
    torch.manual_seed(10)
    rng = random.Random(10)
    for _ in range(12):
        n_layers = rng.randint(1, 3)
        sparsity = rng.choice([1, 2, 4])
        task = rng.choice(["causal_lm", "seq2seq"])
        values: dict[str, object] = {
            "task": task,
            "n_layers": n_layers,
            "d_model": rng.choice([8, 16, 32]),
            "heads": rng.choice([1, 2]),
            "ffn": [rng.choice(["sparse", "sparse", "dense"]) for _ in range(n_layers)],
            "sparsity": sparsity,
            "ffn_dim": sparsity * rng.randint(1, 10),
            "activation": rng.choice(["gelu", "relu"]),
            "embed_dim": rng.choice([None, 8]),
        }
        if task == "seq2seq":
            values["n_encoder_layers"] = rng.randint(1, 2)
            values["encoder_ffn"] = "sparse"
        config = ArchConfig.from_dict(values)
        model = build_model(config).eval()
        steps, source_steps = rng.randint(1, 16), rng.randint(1, 16)
        args = [torch.randint(0, 256, (1, steps))]
        if task == "seq2seq":
            args.append(torch.randint(0, 256, (1, source_steps)))
        costs = estimate_costs(config, CountingConvention(tokens=steps, source_tokens=source_steps))
        assert costs.total_macs == measured_macs(model, *args)["total"], values
        assert costs.params == sum(p.numel() for p in model.parameters()), values
