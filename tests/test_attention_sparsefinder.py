"""SparseFinder attention: full attention when every key is kept, exact attention over the
predicted keys otherwise, a finder loss that teaches the prediction, and its recall."""

from __future__ import annotations

import math

import pytest
import torch

from archsearch import ArchConfig, build_model
from archsearch.models.attention.common import causal_mask, merge_heads
from archsearch.models.attention.sparsefinder import recall_and_sparsity
from archsearch.models.registry import BlockContext, attention_family


def _module(causal: bool, k: int, r: int = 4, d_model: int = 32, heads: int = 2):
    arch = ArchConfig.from_dict(
        {"n_layers": 1, "d_model": d_model, "heads": heads, "attention": "sparsefinder",
         "finder_k": k, "finder_dim": r, "max_seq_len": 64}
    )  # fmt: skip
    ctx = BlockContext(layer=arch.layers[0], arch=arch, causal=causal, encoder=not causal)
    return ctx, attention_family("sparsefinder").build(ctx)


@pytest.mark.parametrize("causal", [True, False])
def test_keeping_every_key_is_full_attention(causal: bool) -> None:
    torch.manual_seed(0)
    ctx, finder = _module(causal, k=24)  # k >= the 24 tokens below
    full = attention_family("full").build(ctx)
    full.load_state_dict(finder.state_dict(), strict=False)  # the same q/k/v/output weights
    x = torch.randn(2, 24, 32)
    with torch.no_grad():
        y, aux = finder.eval()(x)
        torch.testing.assert_close(y, full.eval()(x), rtol=1e-5, atol=1e-6)
    assert aux.item() == 0.0  # the finder's loss is a training-time term only


@pytest.mark.parametrize("causal", [True, False])
def test_attends_exactly_over_the_keys_the_projection_ranks_highest(causal: bool) -> None:
    """Reference: dense softmax attention with every key outside each query's top-k of the
    projected scores (found by sorting, not top-k) masked out."""
    torch.manual_seed(1)
    k = 5
    _, finder = _module(causal, k=k)
    finder.eval()
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        q, keys, v = finder.proj.qkv(x, None)
        per_head = (2, 16, 4)  # heads, head_dim, finder_dim: head h's rows follow head h-1's
        finder_q, finder_k = finder.finder_q.view(per_head), finder.finder_k.view(per_head)
        projected = (q @ finder_q) @ (keys @ finder_k).transpose(-1, -2)
        allowed = causal_mask(16, 16, x.device) if causal else torch.ones(16, 16, dtype=torch.bool)
        ranked = projected.masked_fill(~allowed, float("-inf")).argsort(-1, descending=True)
        keep = torch.zeros_like(projected, dtype=torch.bool)
        keep.scatter_(-1, ranked[..., :k], True)
        keep &= allowed
        scores = (q @ keys.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~keep, -1e30)
        expected = finder.proj.out(merge_heads(torch.softmax(scores, -1) @ v))
        y, _ = finder(x)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    # each query attends to min(k, its earlier keys) keys
    counts = keep.sum(-1)
    if causal:
        assert counts[0, 0].tolist() == [min(k, i + 1) for i in range(16)]
    else:
        assert bool((counts == k).all())


def test_the_finder_loss_trains_only_the_finder_and_raises_its_recall() -> None:
    """Trained on its own loss alone, the projection learns to pick the dense attention's
    largest entries: recall of the top-k rises well above its untrained value."""
    torch.manual_seed(2)
    _, finder = _module(True, k=4, r=8)
    finder.train()
    x = torch.randn(4, 32, 32)
    _, aux = finder(x)
    aux.backward()
    for name, parameter in finder.named_parameters():
        reached = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        assert reached == name.startswith("finder_"), name
    before = recall_and_sparsity(finder, x)["recall"]
    optimizer = torch.optim.Adam([finder.finder_q, finder.finder_k], lr=3e-2)
    for _ in range(150):
        optimizer.zero_grad()
        finder(x)[1].backward()
        optimizer.step()
    after = recall_and_sparsity(finder, x)
    assert after["recall"] > before + 0.2 and after["recall"] > 0.6, (before, after)
    assert after["sparsity"] > 0.7  # 4 keys of up to 32 earlier ones


def test_recall_and_sparsity_of_a_finder_that_keeps_everything() -> None:
    torch.manual_seed(3)
    _, finder = _module(True, k=64)
    figures = recall_and_sparsity(finder.eval(), torch.randn(2, 16, 32))
    assert figures == pytest.approx({"sparsity": 0.0, "recall": 1.0, "mass": 1.0})


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_a_model_adds_the_finder_loss_in_training_only(norm: str) -> None:
    config = ArchConfig.from_dict(
        {"n_layers": 2, "d_model": 32, "heads": 2, "attention": ["sparsefinder", "full"],
         "finder_k": 4, "vocab_size": 64, "norm": norm}
    )  # fmt: skip
    torch.manual_seed(4)
    model = build_model(config)
    tokens = torch.randint(0, 64, (2, 16))
    output = model.train()(tokens)
    assert output.aux_loss.item() > 0
    output.aux_loss.backward()  # the finder loss reaches the finder, in either block layout
    finder = [p for n, p in model.named_parameters() if n.startswith("blocks.0.attn.finder")]
    assert finder and all(p.grad is not None and p.grad.abs().sum() > 0 for p in finder)
    assert model.eval()(tokens).aux_loss.item() == 0
