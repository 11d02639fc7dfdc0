"""Switch mixture of experts: equivalence with a dense FFN, capacity, balancing loss, costs."""

from __future__ import annotations

import random

import torch

from archsearch import ArchConfig, build_model, estimate_costs
from archsearch.config import LayerConfig
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.ffn.moe import (
    BALANCE_WEIGHT,
    SwitchFFN,
    expert_capacity,
    load_balancing_loss,
    switch_macs,
)
from archsearch.models.registry import BlockContext


def _ctx(d_model: int = 16, **layer: object) -> BlockContext:
    config = LayerConfig(ffn="switch_moe", **layer)  # type: ignore[arg-type]
    arch = ArchConfig(layers=(config,), d_model=d_model)
    return BlockContext(layer=config, arch=arch, causal=True)


def _moe_config(**overrides: object) -> ArchConfig:
    base = {"n_layers": 2, "d_model": 16, "heads": 2, "ffn": "switch_moe", "ffn_ratio": 2.0}
    return ArchConfig.from_dict({**base, **overrides})


def _ffn_inputs(
    model: torch.nn.Module, *args: torch.Tensor
) -> list[tuple[SwitchFFN, torch.Tensor]]:
    """Run the model once and return each MoE layer with the input it received."""
    seen: list[tuple[SwitchFFN, torch.Tensor]] = []
    hooks = [
        module.register_forward_pre_hook(lambda m, inp: seen.append((m, inp[0].detach())))
        for module in model.modules()
        if isinstance(module, SwitchFFN)
    ]
    with torch.no_grad():
        model(*args)
    for hook in hooks:
        hook.remove()
    return seen


def test_one_expert_model_equals_dense_model() -> None:
    torch.manual_seed(0)
    dense = build_model(_moe_config(ffn="dense")).eval()
    moe = build_model(_moe_config(experts=1, capacity_factor=1.0)).eval()
    dense_state = dense.state_dict()
    state = {
        key: value if "ffn.router." in key else dense_state[key.replace("ffn.ffns.0.", "ffn.")]
        for key, value in moe.state_dict().items()
    }
    moe.load_state_dict(state)
    tokens = torch.randint(0, 256, (3, 11))
    # One expert: the router probability is exactly 1 and nothing overflows, so bit-equal.
    assert torch.equal(moe(tokens).logits, dense(tokens).logits)


def test_load_balancing_loss_matches_independent_computation() -> None:
    torch.manual_seed(1)
    for experts in (2, 3, 5):
        probs = torch.softmax(torch.randn(40, experts) * 2, dim=-1)
        expert = probs.argmax(-1)
        expected = 0.0
        for i in range(experts):
            fraction = sum(1 for e in expert.tolist() if e == i) / len(expert)
            mean_prob = sum(row[i] for row in probs.tolist()) / len(expert)
            expected += fraction * mean_prob
        got = load_balancing_loss(probs, expert).item()
        assert abs(got - experts * expected) < 1e-5


def test_load_balancing_loss_is_one_for_uniform_routing_and_grows_when_unbalanced() -> None:
    experts, tokens = 4, 32
    balanced = torch.arange(tokens) % experts
    uniform_probs = torch.full((tokens, experts), 1 / experts)
    assert abs(load_balancing_loss(uniform_probs, balanced).item() - 1.0) < 1e-6
    # Confident routing (one-hot probabilities): E * sum f_i^2 >= 1, equality only when even.
    one_hot = torch.nn.functional.one_hot(balanced, experts).float()
    assert abs(load_balancing_loss(one_hot, balanced).item() - 1.0) < 1e-6
    rng = random.Random(2)
    for _ in range(20):
        expert = torch.tensor([rng.randrange(experts) for _ in range(tokens)])
        probs = torch.nn.functional.one_hot(expert, experts).float()
        even = torch.bincount(expert, minlength=experts).eq(tokens // experts).all().item()
        loss = load_balancing_loss(probs, expert).item()
        assert loss > 1.0 + 1e-6 or even
    collapsed = torch.zeros(tokens, dtype=torch.long)
    collapsed_probs = torch.nn.functional.one_hot(collapsed, experts).float()
    assert abs(load_balancing_loss(collapsed_probs, collapsed).item() - experts) < 1e-6


def test_aux_loss_is_scaled_balancing_loss_summed_over_layers() -> None:
    torch.manual_seed(3)
    model = build_model(_moe_config(experts=3)).eval()
    tokens = torch.randint(0, 256, (2, 9))
    expected = sum(
        BALANCE_WEIGHT * load_balancing_loss(r.probs, r.expert)
        for r in (ffn.route(x) for ffn, x in _ffn_inputs(model, tokens))
    )
    assert torch.allclose(model(tokens).aux_loss, torch.as_tensor(expected))


def test_capacity_keeps_earliest_tokens_position_major_and_drops_the_rest() -> None:
    torch.manual_seed(4)
    ctx = _ctx(d_model=8, experts=3, capacity_factor=0.5, ffn_dim=12)
    moe = SwitchFFN(ctx).eval()
    batch, steps = 3, 10
    x = torch.randn(batch, steps, 8)
    routing = moe.route(x)
    capacity = expert_capacity(batch * steps, 3, 0.5)
    expert = routing.expert.view(batch, steps).tolist()
    counts, expected_kept = [0, 0, 0], torch.zeros(batch, steps, dtype=torch.bool)
    for t in range(steps):  # position-major: every sequence's token t before any token t + 1
        for b in range(batch):
            if counts[expert[b][t]] < capacity:
                counts[expert[b][t]] += 1
                expected_kept[b, t] = True
    assert torch.equal(routing.kept.view(batch, steps), expected_kept)
    assert not expected_kept.all(), "test needs overflowing tokens"

    y, _ = moe(x)
    flat, out = x.reshape(-1, 8), y.reshape(-1, 8)
    for n in range(flat.shape[0]):
        if routing.kept[n]:
            ffn = moe.ffns[int(routing.expert[n])]
            reference = routing.gate[n] * ffn(flat[n : n + 1])[0][0]
            assert torch.allclose(out[n], reference, atol=1e-6)
        else:
            assert torch.equal(out[n], torch.zeros(8))


def test_causal_with_overflowing_tokens() -> None:
    torch.manual_seed(5)
    model = build_model(_moe_config(experts=2, capacity_factor=0.4)).eval()
    tokens = torch.randint(0, 256, (2, 14))
    routed = _ffn_inputs(model, tokens)
    assert any(not ffn.route(x).kept.all() for ffn, x in routed), "test needs overflow"
    changed = tokens.clone()
    cut = 6
    changed[:, cut + 1 :] = torch.randint(0, 256, changed[:, cut + 1 :].shape)
    with torch.no_grad():
        before, after = model(tokens).logits, model(changed).logits
    assert torch.allclose(before[:, : cut + 1], after[:, : cut + 1], atol=1e-6)
    assert not torch.allclose(before[:, cut + 1 :], after[:, cut + 1 :])


def test_gradients_reach_router_and_every_expert() -> None:
    torch.manual_seed(6)
    model = build_model(_moe_config(experts=3, capacity_factor=3.0)).train()
    tokens = torch.randint(0, 256, (4, 16))
    for ffn, x in _ffn_inputs(model, tokens):
        kept = ffn.route(x)
        assert torch.bincount(kept.expert[kept.kept], minlength=3).gt(0).all()
    out = model(tokens)
    loss = torch.nn.functional.cross_entropy(out.logits.flatten(0, 1), tokens.flatten())
    (loss + out.aux_loss).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_same_seed_same_output() -> None:
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model(_moe_config(experts=4, capacity_factor=0.8))
        tokens = torch.randint(0, 256, (2, 12))
        out = model(tokens)
        outputs.append((out.logits, out.aux_loss))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert torch.equal(outputs[0][1], outputs[1][1])


def test_expert_capacity_rounds_up_without_float_noise() -> None:
    assert expert_capacity(30, 4, 1.25) == 10  # 9.375 -> 10
    assert expert_capacity(10, 1, 1.1) == 11  # 1.1 * 10 is 11.000000000000002 in floats
    assert expert_capacity(3, 8, 0.1) == 1  # never zero


def test_module_macs_match_measured_without_overflow() -> None:
    torch.manual_seed(8)
    for experts, steps in ((1, 5), (3, 9), (4, 17)):
        ctx = _ctx(d_model=16, experts=experts, capacity_factor=float(experts), ffn_ratio=1.5)
        moe = SwitchFFN(ctx).eval()
        x = torch.randn(1, steps, 16)
        assert measured_macs(moe, x)["total"] == switch_macs(ctx, steps, 0)
        assert sum(p.numel() for p in moe.parameters()) == ctx.layer.experts * 2 * 16 * 24 + (
            16 * experts
        )


def test_measured_macs_count_processed_tokens_and_never_exceed_estimate() -> None:
    torch.manual_seed(9)
    rng = random.Random(9)
    overflowed = 0
    for _ in range(12):
        experts = rng.randint(2, 5)
        ctx = _ctx(d_model=8, experts=experts, capacity_factor=rng.uniform(0.2, 1.5), ffn_dim=10)
        moe = SwitchFFN(ctx).eval()
        steps = rng.randint(1, 20)
        x = torch.randn(1, steps, 8)
        processed = int(moe.route(x).kept.sum())
        overflowed += processed < steps
        measured = measured_macs(moe, x)["total"]
        assert measured == steps * 8 * experts + processed * 2 * 8 * 10
        assert measured <= switch_macs(ctx, steps, 0)
    assert overflowed, "test needs overflowing cases"


def _random_config(rng: random.Random, *, overflow: bool) -> tuple[ArchConfig, int, int]:
    n_layers = rng.randint(1, 3)
    experts = rng.randint(1, 5)
    d_model = rng.choice([8, 16, 24])
    task = rng.choice(["causal_lm", "seq2seq"])
    values: dict[str, object] = {
        "task": task,
        "n_layers": n_layers,
        "d_model": d_model,
        "heads": rng.choice([1, 2]),
        "ffn": [rng.choice(["switch_moe", "switch_moe", "dense"]) for _ in range(n_layers)],
        "experts": experts,
        "capacity_factor": rng.uniform(0.2, 1.5) if overflow else float(experts),
        "activation": rng.choice(["gelu", "relu"]),
        "embed_dim": rng.choice([None, 8]),
    }
    if rng.random() < 0.5:
        values["ffn_dim"] = rng.randint(1, 40)
    else:
        values["ffn_ratio"] = rng.choice([1.0, 2.0, 3.5])
    if task == "seq2seq":
        values["n_encoder_layers"] = rng.randint(1, 2)
        values["encoder_ffn"] = "switch_moe"
    return ArchConfig.from_dict(values), rng.randint(1, 16), rng.randint(1, 16)


def _measure(config: ArchConfig, steps: int, source_steps: int) -> tuple[int, int, int]:
    model = build_model(config).eval()
    tokens = torch.randint(0, config.vocab_size, (1, steps))
    args = (tokens,)
    if config.task == "seq2seq":
        args = (tokens, torch.randint(0, config.vocab_size, (1, source_steps)))
    convention = CountingConvention(tokens=steps, source_tokens=source_steps)
    costs = estimate_costs(config, convention)
    measured = measured_macs(model, *args)["total"]
    assert costs.params == sum(p.numel() for p in model.parameters())
    return costs.total_macs, measured, costs.params


def test_model_costs_match_measured_over_random_configs() -> None:
    torch.manual_seed(10)
    rng = random.Random(10)
    for _ in range(12):
        config, steps, source_steps = _random_config(rng, overflow=False)
        analytic, measured, _ = _measure(config, steps, source_steps)
        assert analytic == measured, config.to_dict()


def test_model_measured_macs_never_exceed_estimate_when_tokens_overflow() -> None:
    torch.manual_seed(11)
    rng = random.Random(11)
    for _ in range(12):
        config, steps, source_steps = _random_config(rng, overflow=True)
        analytic, measured, _ = _measure(config, steps, source_steps)
        assert measured <= analytic, config.to_dict()
