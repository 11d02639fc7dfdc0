"""Zero-cost proxies: invariances each one must have, determinism, and no side effects."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import archsearch
from archsearch import ArchConfig
from archsearch.evaluate import load_recipe
from archsearch.evaluate.data import Batch
from archsearch.evaluate.proxies import (
    PROXIES,
    grad_norm_score,
    initial_model,
    jacob_cov_score,
    param_count,
    proxy_batch,
    synflow,
    synflow_score,
)
from archsearch.evaluate.recipe import Recipe

SEQ_LEN, BATCH = 16, 6


def _config(**changes: Any) -> ArchConfig:
    base = {"d_model": 32, "n_layers": 2, "heads": 2, "ffn_ratio": 2.0, "max_seq_len": 32}
    return ArchConfig.from_dict({**base, **changes})


def _recipe() -> Recipe:
    per_step = SEQ_LEN * BATCH
    return load_recipe("lm_brief").replace(
        seq_len=SEQ_LEN, batch_size=BATCH, token_budget=4 * per_step, eval_tokens=per_step
    )


def _model(**changes: Any) -> torch.nn.Module:
    return initial_model(_config(**changes), _recipe())


def _permuted(batch: Batch, order: list[int]) -> Batch:
    return Batch(batch.inputs[order], batch.targets[order], batch.fresh)


def test_param_count_is_the_parameters_outside_embedding_and_output() -> None:
    for changes in ({}, {"tie_embeddings": False}, {"n_layers": 3, "ffn_ratio": 3.0}):
        model = _model(**changes)
        outside = {"embed.table.weight", "head.logits.weight"}
        expected = sum(p.numel() for n, p in model.named_parameters() if n not in outside)
        assert param_count(_config(**changes), _recipe()) == expected


def test_synflow_ignores_the_sign_of_every_weight() -> None:
    model, batch = _model(), proxy_batch(_recipe())
    flipped = _model()
    with torch.no_grad():
        for index, parameter in enumerate(flipped.parameters()):
            if index % 2 == 0:
                parameter.neg_()
    assert synflow_score(flipped, batch) == synflow_score(model, batch)


def test_synflow_ignores_the_tokens() -> None:
    """The probe is all ones in place of the embedded tokens: which tokens does not matter."""
    model, batch = _model(), proxy_batch(_recipe())
    other = Batch(torch.randint(0, 256, batch.inputs.shape), batch.targets, True)
    assert synflow_score(model, other) == synflow_score(model, batch)


def test_synflow_moves_by_log_c_when_the_output_layer_is_scaled_by_c() -> None:
    """R is linear in the output weights, so every |theta dR/dtheta| term scales by c."""
    model, batch = _model(tie_embeddings=False), proxy_batch(_recipe())
    base = synflow_score(model, batch)
    with torch.no_grad():
        model.head.logits.weight.mul_(3.0)
    assert synflow_score(model, batch) == pytest.approx(base + math.log(3.0), abs=1e-9)


@pytest.mark.parametrize("layers", [2, 8])
def test_synflow_scores_performer_as_the_same_weights_with_full_attention(layers: int) -> None:
    """Under synflow's probe every position carries one vector, so any attention returns its
    values whatever the queries and keys: a Performer model scores exactly what the same
    weights score with full attention (Performer's features are a buffer, not weights). Its
    exponential features must not turn rounding into flow."""
    batch = proxy_batch(_recipe())
    shape = {"n_layers": layers, "d_model": 64, "heads": 2}
    performer = _model(attention="performer", performer_features=32, **shape)
    full = _model(attention="full", **shape)
    missing, unexpected = full.load_state_dict(performer.state_dict(), strict=False)
    assert not missing and all(name.endswith(".features") for name in unexpected)
    assert synflow_score(performer, batch) == pytest.approx(synflow_score(full, batch), abs=1e-6)


def test_synflow_scores_a_gated_ffn_as_the_dense_ffn_of_its_value_path() -> None:
    """The gate's product would square the flow (and overflow a deep model): synflow takes the
    gate as ones, so a gated model scores exactly what the dense model with its value and
    output matrices scores, the gate's weights get no flow, and depth cannot overflow it."""
    batch = proxy_batch(_recipe())
    shape = {"n_layers": 2, "d_model": 64, "heads": 2}
    gated = _model(ffn="glu", **shape)
    dense = _model(ffn="dense", **shape)
    missing, unexpected = dense.load_state_dict(gated.state_dict(), strict=False)
    assert not missing and all(".ffn.gate." in name for name in unexpected)
    assert synflow_score(gated, batch) == pytest.approx(synflow_score(dense, batch), abs=1e-9)
    deep = _model(ffn="glu", n_layers=12, d_model=256, heads=4)
    assert math.isfinite(synflow_score(deep, batch))


def test_synflow_grows_with_depth_and_leaves_the_model_alone() -> None:
    """With absolute weights every residual branch adds non-negative flow."""
    batch = proxy_batch(_recipe())
    shallow, deep = _model(n_layers=1), _model(n_layers=3)
    before = {k: v.clone() for k, v in deep.state_dict().items()}
    assert synflow_score(deep, batch) > synflow_score(shallow, batch)
    after = deep.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(deep.parameters()).dtype == torch.float32
    assert all(p.grad is None for p in deep.parameters())


def test_grad_norm_is_invariant_to_batch_order_and_duplication() -> None:
    """The loss is a mean over tokens: reordering or repeating the examples keeps it."""
    model, batch = _model(), proxy_batch(_recipe())
    base = grad_norm_score(model, batch)
    assert base > 0
    reordered = _permuted(batch, [5, 3, 1, 0, 2, 4])
    assert grad_norm_score(model, reordered) == pytest.approx(base, rel=1e-5)
    doubled = Batch(batch.inputs.repeat(2, 1), batch.targets.repeat(2, 1), True)
    assert grad_norm_score(model, doubled) == pytest.approx(base, rel=1e-5)
    assert all(p.grad is None for p in model.parameters())


def test_grad_norm_of_an_all_zero_model_is_zero() -> None:
    """Zero weights: zero hidden states and logits, so no parameter can move the loss."""
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    assert grad_norm_score(model, proxy_batch(_recipe())) == 0.0


def test_jacob_cov_is_invariant_to_batch_order_and_output_scale() -> None:
    model, batch = _model(tie_embeddings=False), proxy_batch(_recipe())
    base = jacob_cov_score(model, batch)
    assert math.isfinite(base)
    reordered = _permuted(batch, [1, 0, 3, 2, 5, 4])
    assert jacob_cov_score(model, reordered) == pytest.approx(base, rel=1e-6)
    with torch.no_grad():
        model.head.logits.weight.mul_(7.0)  # scales every Jacobian: correlations stay
    assert jacob_cov_score(model, batch) == pytest.approx(base, rel=1e-6)


def test_jacob_cov_punishes_examples_the_model_cannot_tell_apart() -> None:
    model, batch = _model(), proxy_batch(_recipe())
    rows = batch.inputs.clone()
    rows[1] = rows[0]  # two identical examples: a correlation of one, an eigenvalue of zero
    repeated = Batch(rows, batch.targets, True)
    assert jacob_cov_score(model, repeated) < jacob_cov_score(model, batch) - 1000


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"memory": "xl", "mem_len": 8},
        {"attention": "local", "window": 4},
        {"ffn": "switch_moe", "experts": 2},
        {"ffn": "glu"},
        {"embed_dim": 16},
    ],
    ids=["full", "xl-memory", "local", "moe", "glu", "factorized"],
)
def test_every_proxy_is_finite_and_deterministic(changes: dict[str, Any]) -> None:
    config, recipe = _config(**changes), _recipe()
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    first = {name: proxy(config, recipe) for name, proxy in PROXIES.items()}
    assert torch.equal(torch.rand(2), expected)  # the caller's random stream is untouched
    second = {name: proxy(config, recipe) for name, proxy in PROXIES.items()}
    assert first == second
    assert all(math.isfinite(value) for value in first.values())


def test_the_proxy_model_is_the_model_training_starts_from() -> None:
    config, recipe = _config(), _recipe()
    reference = archsearch.build_model(config, seed=recipe.seed)  # what evaluate() starts from
    built = initial_model(config, recipe)
    for (name, a), (_, b) in zip(
        reference.state_dict().items(), built.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert synflow(config, recipe) == synflow_score(reference, proxy_batch(recipe))
