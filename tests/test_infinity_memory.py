"""The infinity-former's continuous memory: a ridge fit of the past, a fixed cost however long
the past, read through Gaussian densities, carried across segments beside an XL memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from test_memory import infinity, layer_inputs, model_for, run_segments, tokens, xl
from test_memory_costs import TOLERANCE

from archsearch import ArchConfig, InputError, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.families.infinity import RIDGE
from archsearch.models.memory import memory_macs, memory_params, steady_state


def _basis(positions: torch.Tensor, n: int) -> torch.Tensor:
    """[len(positions), n] Gaussian radial basis functions, written apart from the module."""
    centres = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.exp(-0.5 * ((positions[:, None] - centres) * n) ** 2)


def _ridge(values: torch.Tensor, n: int) -> torch.Tensor:
    """Coefficients [B, n, D] of ``values`` [B, L, D] placed at the midpoints of [0, 1]."""
    batch, length, width = values.shape
    design = _basis((torch.arange(length, dtype=torch.float64) + 0.5) / length, n)
    augmented = torch.cat((design, RIDGE**0.5 * torch.eye(n, dtype=torch.float64)))
    zeros = torch.zeros(batch, n, width, dtype=torch.float64)
    targets = torch.cat((values.double(), zeros), 1)
    # least squares on [design; sqrt(lambda) I] is the ridge solution
    solution = torch.linalg.lstsq(augmented.expand(batch, -1, -1), targets).solution
    return solution.float()


@torch.no_grad()
def test_coefficients_are_the_ridge_fit_of_the_evicted_past_and_the_old_signal() -> None:
    """Two refits: first the evicted states alone, then the old signal (sampled at S points)
    followed by the newly evicted states, each a ridge regression solved independently."""
    t, n, s = 6, 5, 4
    cfg = infinity(mem_len=t, ltm_basis=n, ltm_samples=s)
    model = model_for(cfg)
    segments = [tokens(t, seed=s_) for s_ in range(4)]
    states = []
    state = None
    for segment in segments:
        state = model(segment, state=state).state
        states.append(state)
    streams = layer_inputs(model, segments)
    for layer, stream in enumerate(streams):
        first = _ridge(stream[:, :t], n)  # segment 0 leaves the short-term memory at segment 1
        torch.testing.assert_close(states[1][layer][0], first, atol=1e-4, rtol=1e-4)
        points = (torch.arange(s, dtype=torch.float64) + 0.5) / s
        old = _basis(points, n).float() @ first  # the old signal at S points
        second = _ridge(torch.cat((old, stream[:, t : 2 * t]), 1), n)
        torch.testing.assert_close(states[2][layer][0], second, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(states[3][layer][1], stream[:, -t:])  # XL's memory


@torch.no_grad()
def test_the_fit_recovers_a_smooth_past() -> None:
    """A slowly varying past is what N basis functions can hold: the signal at the states'
    positions comes closer to them with more basis functions (ridge shrinks it a little)."""
    import numpy as np

    from archsearch.models.infinity import InfinityMemory, basis_at

    errors = []
    for n in (4, 8, 32):
        memory = InfinityMemory(infinity(n_layers=1, mem_len=1, ltm_basis=n, ltm_samples=8))
        length = 64
        position = (torch.arange(length) + 0.5) / length
        past = torch.stack([torch.sin(2 * torch.pi * position * f) for f in (1, 2)], -1)[None]
        (coefficients, _), _ = memory.update(None, 0, torch.cat((past, past[:, -1:]), 1))
        design = torch.from_numpy(basis_at(np.asarray(position, dtype=np.float64), n)).float()
        errors.append(float((design @ coefficients[0] - past[0]).abs().max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05, errors


@torch.no_grad()
def test_cost_does_not_grow_with_the_past() -> None:
    """The MACs FlopCounterMode counts for a segment after 2, 6 or 20 segments are the same,
    and are the analytic figure; the state keeps its shape."""
    t = 4
    cfg = infinity(mem_len=t, ltm_basis=6, ltm_samples=5)
    model = model_for(cfg)
    costs = estimate_costs(cfg, CountingConvention(tokens=t))
    counted = set()
    state: Any = None
    for index in range(20):
        if index in (2, 6, 19):
            counted.add(measured_macs(model, tokens(t, seed=99), state=state)["total"])
            assert all(c.shape[1] == 6 and m.shape[1] == t for c, m in state)
        state = model(tokens(t, seed=index), state=state).state
    assert counted == {costs.total_macs}
    longer = infinity(mem_len=t, ltm_basis=6, ltm_samples=5, max_seq_len=4096)
    assert estimate_costs(longer, CountingConvention(tokens=t)).total_macs == costs.total_macs


@torch.no_grad()
def test_the_long_term_memory_remembers_what_xl_forgets() -> None:
    """One layer, mem_len = segment: segment A has left XL's memory two segments later, yet
    the infinity-former's outputs still depend on it (and XL's do not)."""
    t = 4
    first = [tokens(t, seed=10), tokens(t, seed=11)]
    rest = [tokens(t, seed=12), tokens(t, seed=13)]
    for cfg, remembers in (
        (xl(n_layers=1, mem_len=t), False),
        (infinity(n_layers=1, mem_len=t), True),
    ):
        model = model_for(cfg)
        a, _ = run_segments(model, [first[0], *rest])
        b, _ = run_segments(model, [first[1], *rest])
        assert torch.allclose(a.logits, b.logits, atol=1e-6) is not remembers


@torch.no_grad()
def test_the_read_is_a_gaussian_expectation_of_the_signal() -> None:
    """Independent arithmetic for one head: the mean and width from the scores, the density
    at the S points, the weighted values. A query that puts its mean at one end of the memory
    reads that end."""
    from archsearch.models.infinity import ContinuousRead

    cfg = infinity(n_layers=1, heads=1, d_model=8, ltm_basis=6, ltm_samples=7)
    torch.manual_seed(3)
    read = ContinuousRead(cfg, cfg.layers[0])
    for p in read.parameters():
        p.normal_()
    coefficients, h = torch.randn(1, 6, 8), torch.randn(1, 3, 8)
    points = (torch.arange(7) + 0.5) / 7
    psi = _basis(points.double(), 6).float()
    signal = F.layer_norm(psi @ coefficients[0], (8,), read.norm.weight, read.norm.bias)
    k, v = signal @ read.key.weight.T, signal @ read.value.weight.T
    q = h[0] @ read.query.weight.T
    scores = q @ k.T / 8**0.5
    z = scores @ read.place[0] + read.place_bias[0]
    mean, width = torch.sigmoid(z[:, :1]), F.softplus(z[:, 1:]) + 1 / 7
    density = torch.exp(-0.5 * ((points - mean) / width) ** 2)
    density = density / density.sum(1, keepdim=True)
    expected = (density @ v) @ read.out.weight.T
    torch.testing.assert_close(read(coefficients, h)[0], expected, atol=1e-5, rtol=1e-4)


def test_one_training_step_with_a_past_trains_the_read() -> None:
    cfg = infinity(mem_len=4)
    model = model_for(cfg).train()
    _, state = run_segments(model, [tokens(6, seed=1), tokens(6, seed=2)])
    batch = tokens(7, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        out = model(batch[:, :-1], state=state)
        return F.cross_entropy(out.logits.flatten(0, 1), batch[0, 1:])

    before = loss()
    before.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    optimizer.step()
    with torch.no_grad():
        assert loss() < before


def test_parameters_and_costs_are_exact_with_per_layer_widths() -> None:
    cfg = infinity(heads=[2, 4], attn_dim=[8, 16], ltm_basis=5, ltm_samples=3, d_model=12)
    model = model_for(cfg)
    assert memory_params(cfg) == sum(p.numel() for p in model.memory.parameters())
    costs = estimate_costs(cfg, CountingConvention(tokens=6))
    assert costs.params == sum(p.numel() for p in model.parameters())
    by_module = measured_macs(model, tokens(6), state=steady_state(cfg))
    assert by_module["total"] == costs.total_macs
    assert memory_macs(cfg, 6) == costs.macs_by_part["memory"]
    assert sum(v for k, v in by_module.items() if k.startswith("CausalLM.memory.reads.")) > 0


def test_settings_are_checked() -> None:
    for key in ("ltm_basis", "ltm_samples"):
        with pytest.raises(InputError) as caught:
            ArchConfig.from_dict(
                {
                    "n_layers": 1,
                    "memory": "infinity",
                    "mem_len": 2,
                    "ltm_basis": 2,
                    "ltm_samples": 2,
                    key: 0,
                }
            )
        assert caught.value.key == key


def test_without_a_short_term_memory_it_mixes_with_any_attention() -> None:
    """mem_len 0: no keys are added to attention, so Linformer may read the continuous memory;
    with a short-term memory Linformer is refused, as with XL."""
    from archsearch.models import validate_config

    alone = infinity(mem_len=0, attention="linformer", linformer_k=4)
    validate_config(alone)
    with pytest.raises(InputError, match="cannot attend to recurrent memory"):
        validate_config(infinity(mem_len=4, attention="linformer", linformer_k=4))
    model = model_for(alone)
    a, _ = run_segments(model, [tokens(8, seed=1), tokens(8, seed=3)])
    b, _ = run_segments(model, [tokens(8, seed=2), tokens(8, seed=3)])
    assert not torch.allclose(a.logits, b.logits, atol=1e-5)
    costs = estimate_costs(alone, CountingConvention(tokens=8))
    _, state = run_segments(model, [tokens(8, seed=1)])
    assert measured_macs(model, tokens(8, seed=3), state=state)["total"] == costs.total_macs


def test_it_reads_beside_an_attention_with_an_aux_loss_and_refuses_post_norm() -> None:
    """SparseFinder's attention hands back (y, finder loss): the block adds the read to y and
    the loss to the model's aux loss. Post-norm blocks have no read: refused with one line."""
    from archsearch.models import validate_config

    cfg = infinity(mem_len=0, attention="sparsefinder", finder_dim=4, finder_k=4)
    model = model_for(cfg)
    model.train()
    a, _ = run_segments(model, [tokens(8, seed=1), tokens(8, seed=3)])
    b, _ = run_segments(model, [tokens(8, seed=2), tokens(8, seed=3)])
    assert not torch.allclose(a.logits, b.logits, atol=1e-5)  # the past is read
    assert a.aux_loss.item() > 0  # the finder's loss arrives
    with pytest.raises(InputError) as caught:
        validate_config(infinity(norm="post"))
    assert caught.value.key == "norm"


def test_the_supernet_refuses_it_in_one_line() -> None:
    from archsearch.space import SearchSpace
    from archsearch.supernet.sharing import check_shareable

    space = SearchSpace.from_dict(
        {
            "name": "with_infinity",
            "task": "causal_lm",
            "fixed": {"ltm_basis": 4, "ltm_samples": 4},
            "params": {"n_layers": {"int": [1, 2]}, "memory": {"choice": ["none", "infinity"]}},
        }
    )
    with pytest.raises(InputError) as caught:
        check_shareable(space)
    assert caught.value.key == "memory" and "fix memory: none" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "tolerance"),
    [
        ({"mem_len": 0, "attention": "linformer", "linformer_k": 8, "ltm_samples": 16}, 0.01),
        ({"mem_len": 8, "ltm_basis": 32, "ltm_samples": 64, "heads": 4}, 0.01),  # read dominates
        # an attention with an aux loss beside the read: SparseFinder's own estimate is about
        # 3% over the tracker without memory, so the shared tolerance
        (
            {"mem_len": 0, "ltm_samples": 16, "attention": "sparsefinder", "finder_k": 8},
            TOLERANCE,
        ),
    ],
)
def test_peak_memory_estimates_match_the_tracker(
    overrides: dict[str, Any], tolerance: float
) -> None:
    """The shared tracker test covers the spec's example; these cover no short-term memory,
    a read whose [B, H, T, S] grids outweigh the rest, and a read beside SparseFinder."""
    from conftest import FAMILY_BASE, FAMILY_BATCH, FAMILY_TOKENS
    from test_memory_costs import measured

    from archsearch.costs.peak_bytes import inference_memory, training_memory

    cfg = ArchConfig.from_dict({**FAMILY_BASE, "memory": "infinity", "ltm_basis": 8, **overrides})
    inference, training, _ = measured(cfg)
    estimate = inference_memory(cfg, FAMILY_TOKENS, FAMILY_BATCH).peak
    assert abs(estimate / inference - 1) <= tolerance, (estimate, inference)
    estimate = training_memory(cfg, FAMILY_TOKENS, FAMILY_BATCH).peak
    assert abs(estimate / training - 1) <= tolerance, (estimate, training)
