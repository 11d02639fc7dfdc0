"""Sparse Q/K/V attention: full attention at sparsity 1, and otherwise the dense projections
restricted to the unit the controller scores highest in every block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model
from archsearch.models.attention.common import merge_heads, split_heads
from archsearch.models.positions import rotary
from archsearch.models.registry import BlockContext, attention_family


def _config(**overrides: object) -> ArchConfig:
    base = {"n_layers": 2, "d_model": 32, "heads": 2, "attention": "sparse_qkv", "vocab_size": 64}
    return ArchConfig.from_dict({**base, **overrides})


def _module(sparsity: int, causal: bool = True):
    arch = _config(qkv_sparsity=sparsity)
    ctx = BlockContext(layer=arch.layers[0], arch=arch, causal=causal, encoder=not causal)
    return attention_family("sparse_qkv").build(ctx)


def test_sparsity_one_model_equals_full_attention_model() -> None:
    torch.manual_seed(0)
    full = build_model(_config(attention="full"))
    sparse = build_model(_config(qkv_sparsity=1))
    sparse.load_state_dict(full.state_dict(), strict=True)  # same names, no controller
    tokens = torch.randint(0, 64, (2, 12))
    for mode in (True, False):
        full.train(mode), sparse.train(mode)
        assert torch.equal(sparse(tokens).logits, full(tokens).logits)


@pytest.mark.parametrize(("sparsity", "causal"), [(2, True), (4, False), (8, True)])
def test_projections_are_the_dense_ones_restricted_to_the_best_unit_per_block(
    sparsity: int, causal: bool
) -> None:
    """Reference: dense q, k, v with every unit but the controller's argmax of its block
    zeroed, then plain attention."""
    torch.manual_seed(sparsity)
    module = _module(sparsity, causal).eval()
    x = torch.randn(2, 10, 32)
    proj, controller = module.proj, module.controller
    assert controller is not None
    with torch.no_grad():
        low = controller.down(x)
        parts = []
        for name in ("q", "k", "v"):
            scores = getattr(controller, name)(low).unflatten(-1, (-1, sparsity))
            keep = F.one_hot(scores.argmax(-1), sparsity).flatten(-2).bool()
            parts.append((getattr(proj, name)(x) * keep).detach())
        for got, want in zip(module.projected(x), parts, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
            assert bool(((got != 0).sum(-1) <= 32 // sparsity).all())
        q, k, v = (split_heads(t, 2) for t in parts)
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v, is_causal=causal)
        torch.testing.assert_close(module(x), proj.out(merge_heads(y)), rtol=1e-5, atol=1e-6)


def test_training_picks_pass_the_controller_a_gradient_and_keep_values_exact() -> None:
    """The straight-through gate is 1 in the forward pass: a training forward computes the
    picked units' dense values unchanged, and the controller still gets a gradient."""
    torch.manual_seed(5)
    module = _module(4).train()
    x = torch.randn(2, 10, 32)
    q, _, _ = module.projected(x)
    dense = module.proj.q(x)
    picked = q != 0
    torch.testing.assert_close(q[picked], dense[picked])
    q.square().sum().backward()
    assert module.controller is not None
    assert module.controller.q.weight.grad is not None
    assert module.controller.q.weight.grad.abs().sum() > 0


def test_a_width_that_blocks_do_not_divide_is_refused_with_the_key() -> None:
    with pytest.raises(InputError, match="qkv_sparsity"):
        build_model(_config(qkv_sparsity=3))
