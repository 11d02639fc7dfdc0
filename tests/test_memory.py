"""Recurrent memory: Transformer-XL, compressive and infinity-former memory, checked on whole
models (the infinity-former's own behaviour: test_infinity_memory.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.memory import (
    CompressiveMemory,
    memory_extra_keys,
    memory_macs,
    memory_params,
    steady_state,
)

VOCAB = 40


def config(**overrides: Any) -> ArchConfig:
    base: dict[str, Any] = {"n_layers": 2, "d_model": 16, "heads": 2, "vocab_size": VOCAB}
    base.update(overrides)
    return ArchConfig.from_dict(base)


def xl(**overrides: Any) -> ArchConfig:
    return config(memory="xl", **{"mem_len": 6, **overrides})


def compressive(fn: str = "mean", **overrides: Any) -> ArchConfig:
    settings = {"mem_len": 4, "compress_len": 3, "compress_rate": 2, "compress_fn": fn}
    return config(memory="compressive", **{**settings, **overrides})


def infinity(**overrides: Any) -> ArchConfig:
    settings = {"mem_len": 4, "ltm_basis": 6, "ltm_samples": 5}
    return config(memory="infinity", **{**settings, **overrides})


MEMORIES = {
    "xl": xl,
    "infinity": infinity,
    "infinity_alone": lambda **kw: infinity(**{**kw, "mem_len": 0}),  # no short-term memory
    "compressive_mean": lambda **kw: compressive("mean", **kw),
    "compressive_conv": lambda **kw: compressive("conv", **kw),
}


def model_for(cfg: ArchConfig, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(cfg)


def tokens(length: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def run_segments(model: torch.nn.Module, segments: list[torch.Tensor]) -> tuple[Any, Any]:
    """Feed consecutive segments; the last output and its state."""
    state, out = None, None
    for segment in segments:
        out = model(segment, state=state)
        state = out.state
    return out, state


def layer_inputs(model: torch.nn.Module, segments: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each block's input over the whole stream, recorded by hooks (independent of the memory)."""
    seen: list[list[torch.Tensor]] = [[] for _ in model.blocks]
    hooks = [
        block.register_forward_pre_hook(lambda _m, args, i=i: seen[i].append(args[0].detach()))
        for i, block in enumerate(model.blocks)
    ]
    try:
        run_segments(model, segments)
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(per_layer, 1) for per_layer in seen]


# ---- memory is used ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MEMORIES))
@torch.no_grad()
def test_previous_segment_changes_the_output(kind: str) -> None:
    model = model_for(MEMORIES[kind]())
    current = tokens(4, seed=1)
    a, _ = run_segments(model, [tokens(4, seed=2), current])
    b, _ = run_segments(model, [tokens(4, seed=3), current])
    fresh = model(current).logits
    assert not torch.allclose(a.logits, b.logits, atol=1e-5)
    assert not torch.allclose(a.logits, fresh, atol=1e-5)


@pytest.mark.parametrize("fn", ["mean", "conv"])
@torch.no_grad()
def test_compressed_memory_remembers_what_xl_forgets(fn: str) -> None:
    """One layer, mem_len = segment: segment A is gone from XL's memory two segments later,
    but lives on in compressed slots."""
    t = 4
    first = [tokens(t, seed=10), tokens(t, seed=11)]
    rest = [tokens(t, seed=12), tokens(t, seed=13)]
    xl_model = model_for(xl(n_layers=1, mem_len=t))
    c_model = model_for(compressive(fn, n_layers=1, mem_len=t, compress_len=4, compress_rate=2))
    for model, remembers in ((xl_model, False), (c_model, True)):
        a, _ = run_segments(model, [first[0], *rest])
        b, _ = run_segments(model, [first[1], *rest])
        assert torch.allclose(a.logits, b.logits, atol=1e-6) is not remembers


# ---- Transformer-XL equivalence ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "t"),
    [
        (xl(mem_len=5, n_layers=3), 5),
        (xl(mem_len=9, heads=[2, 4], attn_dim=[8, 16]), 5),
        (compressive("conv", mem_len=12, compress_len=2), 6),  # nothing evicted yet
    ],
)
@torch.no_grad()
def test_two_segments_equal_full_attention_on_their_concatenation(cfg: ArchConfig, t: int) -> None:
    """Rotary positions are relative and the memory holds each layer's input, so segment 2
    with memory of segment 1 is exactly the full-attention model on both, at segment 2."""
    model = model_for(cfg)
    first, second = tokens(t, batch=2, seed=4), tokens(t, batch=2, seed=5)
    out, _ = run_segments(model, [first, second])
    whole = model(torch.cat((first, second), 1)).logits
    torch.testing.assert_close(out.logits, whole[:, t:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fn", ["mean", "conv"])
@torch.no_grad()
def test_compressive_attention_is_xl_attention_over_compressed_then_memory(fn: str) -> None:
    """Same weights; an XL memory holding cat(compressed, memory) gives the same outputs, so
    compressed slots are keys like any other, placed before (older than) the memory."""
    cfg = compressive(fn, mem_len=3, compress_len=2)
    model = model_for(cfg)
    _, state = run_segments(model, [tokens(4, seed=s) for s in range(3)])
    assert all(c.shape[1] == 2 for c, _ in state)
    segment = tokens(4, seed=8)
    as_xl = model_for(xl(mem_len=5))
    loaded = as_xl.load_state_dict(model.state_dict(), strict=False)
    assert not loaded.missing_keys  # only the compressor's weights are left over
    assert all(key.startswith("memory.compressors.") for key in loaded.unexpected_keys)
    joined = tuple(torch.cat((c, m), 1) for c, m in state)
    torch.testing.assert_close(
        model(segment, state=state).logits, as_xl(segment, state=joined).logits
    )


# ---- state: no gradient, bounded, and what it holds ----------------------------------------


@pytest.mark.parametrize("kind", sorted(MEMORIES))
def test_no_gradient_flows_into_the_state(kind: str) -> None:
    model = model_for(MEMORIES[kind]())
    first, second = tokens(6, seed=6), tokens(4, seed=7)  # compressive: evicts a group
    state = model(first).state
    leaves = list(_tensors(state))
    assert leaves and not any(x.requires_grad for x in leaves)

    def grads(seg_state: Any) -> list[torch.Tensor]:
        model.zero_grad()
        out = model(second, state=seg_state)
        (out.logits.square().mean() + out.aux_loss).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    through = grads(state)
    cut = grads(_map(state, lambda x: x.detach().clone()))
    assert len(through) == len(cut)
    for a, b in zip(through, cut, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("t", "rate"), [(3, 2), (5, 4), (11, 3), (1, 2)])
@torch.no_grad()
def test_state_stays_bounded_over_many_segments(t: int, rate: int) -> None:
    mem_len, compress_len = 6, 3
    for cfg in (
        xl(mem_len=mem_len),
        compressive("mean", mem_len=mem_len, compress_len=compress_len, compress_rate=rate),
    ):
        model = model_for(cfg)
        _, state = run_segments(model, [tokens(t, seed=s) for s in range(12)])
        assert len(state) == cfg.n_layers
        for layer_state in state:
            if cfg.memory == "xl":
                assert layer_state.shape[1] == min(mem_len, 12 * t)
            else:
                compressed, memory = layer_state
                assert compressed.shape[1] <= compress_len
                assert mem_len <= memory.shape[1] <= mem_len + rate - 1


@pytest.mark.parametrize(("t", "mem_len", "rate", "compress_len"), [(5, 4, 2, 3), (3, 5, 3, 8)])
@torch.no_grad()
def test_evicted_states_become_the_mean_of_their_group(
    t: int, mem_len: int, rate: int, compress_len: int
) -> None:
    cfg = compressive("mean", mem_len=mem_len, compress_len=compress_len, compress_rate=rate)
    model = model_for(cfg)
    segments = [tokens(t, seed=20 + s) for s in range(6)]
    _, state = run_segments(model, segments)
    for stream, (compressed, memory) in zip(layer_inputs(model, segments), state, strict=True):
        total = stream.shape[1]
        groups = (total - mem_len) // rate  # eviction goes in whole groups from the stream start
        torch.testing.assert_close(memory, stream[:, groups * rate :])
        means = [stream[:, g * rate : (g + 1) * rate].mean(1) for g in range(groups)]
        expected = torch.stack(means[-compress_len:], 1)
        torch.testing.assert_close(compressed, expected)


@torch.no_grad()
def test_conv_compression_applies_its_own_weights_per_layer() -> None:
    cfg = compressive("conv", mem_len=2, compress_len=4, compress_rate=2)
    model = model_for(cfg)
    for conv in model.memory.compressors:  # move away from the mean-pooling start
        conv.weight.normal_()
        conv.bias.normal_()
    segments = [tokens(4, seed=30), tokens(4, seed=31)]
    _, state = run_segments(model, segments)
    for layer, stream in enumerate(layer_inputs(model, segments)):
        conv = model.memory.compressors[layer]
        groups = stream[:, :6].reshape(1, 3, 2, cfg.d_model)  # 8 seen, 2 kept -> 3 groups
        expected = torch.einsum("bgki,oik->bgo", groups, conv.weight) + conv.bias
        torch.testing.assert_close(state[layer][0], expected, atol=1e-5, rtol=1e-4)


# ---- the conv compressor is trained by its reconstruction loss -----------------------------


def test_reconstruction_loss_trains_only_the_compressor() -> None:
    model = model_for(compressive("conv", mem_len=2, compress_len=4))
    _, state = run_segments(model, [tokens(4, seed=40)])
    out = model(tokens(4, seed=41), state=state)
    assert out.aux_loss.item() > 0
    out.aux_loss.backward()
    for name, parameter in model.named_parameters():
        has_grad = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        assert has_grad is name.startswith("memory.compressors"), name


def test_reconstruction_loss_decreases_with_training() -> None:
    torch.manual_seed(0)
    memory = CompressiveMemory(compressive("conv", n_layers=1, mem_len=4, compress_rate=2))
    memory.train()
    stream = torch.randn(4, 12, 16)
    state = ((torch.zeros(4, 0, 16), stream[:, :8]),)
    optimizer = torch.optim.Adam(memory.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        _, aux = memory.update(state, 0, stream[:, 8:])
        optimizer.zero_grad()
        aux.backward()
        optimizer.step()
        losses.append(aux.item())
    assert losses[-1] < 0.7 * losses[0]


def test_reconstruction_loss_is_attention_over_old_versus_compressed_states() -> None:
    """The loss an independent computation gives: SDPA of the queries over both sets."""
    torch.manual_seed(1)
    memory = CompressiveMemory(compressive("conv", n_layers=1, mem_len=2, compress_rate=2))
    memory.train()
    old, hidden = torch.randn(1, 4, 16), torch.randn(1, 2, 16)  # 6 states, 2 kept: 2 groups
    (compressed, _), aux = memory.update(((torch.zeros(1, 0, 16), old),), 0, hidden)
    queries = hidden

    def attend(keys: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(queries @ keys.transpose(1, 2) / 16**0.5, -1)
        return weights @ keys

    expected = F.mse_loss(attend(compressed), attend(old))
    torch.testing.assert_close(aux, expected)
    with torch.no_grad():  # no training work when no gradient is wanted
        assert memory.update(((torch.zeros(1, 0, 16), old),), 0, hidden)[1].item() == 0


# ---- causality and costs -------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MEMORIES))
@torch.no_grad()
def test_causal_within_a_segment_with_memory(kind: str) -> None:
    model = model_for(MEMORIES[kind]())
    _, state = run_segments(model, [tokens(6, seed=s) for s in range(3)])
    segment = tokens(6, seed=50)
    changed = segment.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % VOCAB
    a, b = model(segment, state=state).logits, model(changed, state=state).logits
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3:], b[:, 3:])


@pytest.mark.parametrize("kind", sorted(MEMORIES))
@torch.no_grad()
def test_steady_state_costs_equal_measured(kind: str) -> None:
    """Segments and mem_len multiples of the rate: the memory settles at exactly mem_len."""
    t = 4
    cfg = MEMORIES[kind](mem_len=4, **({"compress_len": 3} if "compressive" in kind else {}))
    model = model_for(cfg)
    _, state = run_segments(model, [tokens(t, seed=s) for s in range(8)])
    for made, quoted in zip(_tensors(state), _tensors(steady_state(cfg)), strict=True):
        assert made.shape[1:] == quoted.shape[1:]  # the state costs are quoted for
    costs = estimate_costs(cfg, CountingConvention(tokens=t))
    assert measured_macs(model, tokens(t, seed=60), state=state)["total"] == costs.total_macs
    assert costs.params == sum(p.numel() for p in model.parameters())


def test_compression_costs_and_params() -> None:
    d, rate, layers, t = 16, 2, 3, 8
    cfg = compressive("conv", n_layers=layers, d_model=d, compress_rate=rate, compress_len=3)
    model = model_for(cfg)
    own = sum(p.numel() for p in model.memory.parameters())
    assert own == memory_params(cfg) == layers * (d * d * rate + d)
    assert memory_params(compressive("mean")) == 0
    assert memory_params(xl()) == 0
    assert memory_extra_keys(cfg) == cfg.mem_len + cfg.compress_len
    by_module = measured_macs(model, tokens(t), state=steady_state(cfg))
    compression = sum(
        v for k, v in by_module.items() if k.startswith("CausalLM.memory.compressors.")
    )
    # t // rate = 4 groups are evicted but only compress_len = 3 slots can stay
    assert compression == memory_macs(cfg, t) == layers * 3 * d * d * rate
    assert estimate_costs(cfg, CountingConvention(tokens=t)).macs_by_part["memory"] == compression


def _tensors(state: Any) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, tuple):
        return [x for item in state for x in _tensors(item)]
    return []


def _map(state: Any, fn: Any) -> Any:
    if isinstance(state, torch.Tensor):
        return fn(state)
    return tuple(_map(item, fn) for item in state)
