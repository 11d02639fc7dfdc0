"""Lite Transformer's long-short range attention (LSRA): behaviour, equivalences and costs."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs, load_space
from archsearch.costs.convention import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.models.attention.convolution import DynamicConv, LightweightConv
from archsearch.models.attention.full import FullAttention
from archsearch.models.attention.lsra import LongShortRangeAttention
from archsearch.models.registry import BlockContext, attention_family

CONV_TYPES = ("lightweight", "dynamic")


def arch(**overrides: Any) -> ArchConfig:
    """A tiny LSRA language model; overrides go through the flat dictionary form."""
    base: dict[str, Any] = {
        "task": "causal_lm",
        "vocab_size": 32,
        "max_seq_len": 32,
        "d_model": 24,
        "n_layers": 2,
        "heads": 2,
        "attention": "lsra",
        "lsra_split": 0.5,
        "conv_kernel": 3,
        "ffn_ratio": 1.0,
    }
    if overrides.get("task") == "seq2seq":
        base["n_encoder_layers"] = 2
    base.update(overrides)
    return ArchConfig.from_dict(base)


def context(config: ArchConfig, causal: bool = True) -> BlockContext:
    return BlockContext(layer=config.layers[0], arch=config, causal=causal, encoder=not causal)


def forward(model: torch.nn.Module, config: ArchConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Logits; a seq2seq model reads the tokens reversed as its source."""
    if config.task == "seq2seq":
        return model(tokens, tokens.flip(-1)).logits
    return model(tokens).logits


# ---- independent references for the two convolutions ---------------------------------------


def loop_convolution(x: torch.Tensor, kernel_at, kernel: int, groups: int, causal: bool):
    """y[b, t, c] = sum_k w[k] * x[b, t - left + k, c], zeros outside the sequence, where w is
    the (already normalised) kernel of c's group at (b, t). One position at a time, on purpose."""
    batch, tokens, channels = x.shape
    left = kernel - 1 if causal else (kernel - 1) // 2
    y = torch.zeros_like(x)
    for b in range(batch):
        for t in range(tokens):
            for c in range(channels):
                w = kernel_at(b, t, c // (channels // groups))
                for k in range(kernel):
                    s = t - left + k
                    if 0 <= s < tokens:
                        y[b, t, c] += w[k] * x[b, s, c]
    return y


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", [2, 3, 4, 9])  # 9 > tokens: the window overhangs both ends
def test_lightweight_conv_matches_loop_reference(causal: bool, kernel: int) -> None:
    torch.manual_seed(0)
    conv = LightweightConv(channels=6, kernel=kernel, groups=3, causal=causal)
    x = torch.randn(2, 7, 6)
    weights = F.softmax(conv.weight.detach(), dim=-1)
    expected = loop_convolution(x, lambda b, t, g: weights[g], kernel, 3, causal)
    torch.testing.assert_close(conv(x).detach(), expected)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kernel", [2, 3, 4, 9])
def test_dynamic_conv_matches_loop_reference(causal: bool, kernel: int) -> None:
    torch.manual_seed(0)
    conv = DynamicConv(channels=6, kernel=kernel, groups=2, causal=causal)
    x = torch.randn(2, 7, 6)
    predict = conv.predict.weight.detach()  # [groups * kernel, channels]

    def kernel_at(b: int, t: int, g: int) -> torch.Tensor:
        logits = (predict @ x[b, t]).view(2, kernel)[g]
        return torch.exp(logits) / torch.exp(logits).sum()

    expected = loop_convolution(x, kernel_at, kernel, 2, causal)
    torch.testing.assert_close(conv(x).detach(), expected)


# ---- the block ------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [True, False])
def test_split_one_block_is_the_attention_branch_alone(causal: bool) -> None:
    torch.manual_seed(0)
    config = arch(lsra_split=1.0, conv_type="dynamic")
    lsra = LongShortRangeAttention(context(config, causal))
    assert lsra.conv is None
    full = FullAttention(context(arch(attention="full"), causal))
    full.load_state_dict(lsra.state_dict())  # strict: exactly the same parameters
    x = torch.randn(2, 9, 24)
    torch.testing.assert_close(lsra(x), full(x))


@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
def test_split_one_model_equals_full_attention_model(task: str) -> None:
    torch.manual_seed(0)
    lsra_config = arch(task=task, lsra_split=1.0)
    lsra = build_model(lsra_config).eval()
    full = build_model(arch(task=task, attention="full")).eval()
    full.load_state_dict(lsra.state_dict())
    tokens = torch.randint(0, 32, (2, 10))
    torch.testing.assert_close(
        forward(lsra, lsra_config, tokens), forward(full, lsra_config, tokens)
    )


@pytest.mark.parametrize("causal", [True, False])
def test_channels_split_between_attention_and_convolution(causal: bool) -> None:
    """First a channels: full attention of width a over x[..., :a]; the rest never mix in."""
    torch.manual_seed(0)
    config = arch(d_model=24, heads=2, lsra_split=1 / 3)  # a = 8, conv branch 16
    lsra = LongShortRangeAttention(context(config, causal))
    a = 8
    narrow = arch(d_model=a, heads=2, attention="full")
    full = FullAttention(context(narrow, causal))
    full.load_state_dict(lsra.proj.state_dict(prefix="proj."))
    x = torch.randn(2, 9, 24)
    y = lsra(x)
    torch.testing.assert_close(y[..., :a], full(x[..., :a]))
    changed = x.clone()
    changed[..., :a] += 1.0  # touch only the attention branch's input
    z = lsra(changed)
    torch.testing.assert_close(z[..., a:], y[..., a:])
    assert not torch.allclose(z[..., :a], y[..., :a])


@pytest.mark.parametrize("conv_type", CONV_TYPES)
@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
def test_model_is_causal(conv_type: str, task: str) -> None:
    torch.manual_seed(0)
    config = arch(task=task, conv_type=conv_type, conv_kernel=4)
    model = build_model(config).eval()
    tokens = torch.randint(0, 32, (2, 12))
    changed = tokens.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % 32
    if task == "seq2seq":  # same source, different future targets
        before = model(tokens, tokens).logits
        after = model(changed, tokens).logits
    else:
        before, after = model(tokens).logits, model(changed).logits
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


@pytest.mark.parametrize("conv_type", CONV_TYPES)
@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
def test_gradients_reach_every_parameter(conv_type: str, task: str) -> None:
    torch.manual_seed(0)
    config = arch(task=task, conv_type=conv_type)
    model = build_model(config)
    tokens = torch.randint(0, 32, (2, 10))
    logits = forward(model, config, tokens)
    F.cross_entropy(logits.flatten(0, 1), tokens.roll(-1, dims=1).flatten()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("conv_type", CONV_TYPES)
def test_same_seed_same_output(conv_type: str) -> None:
    config = arch(conv_type=conv_type)
    tokens = torch.randint(0, 32, (2, 10), generator=torch.Generator().manual_seed(1))
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outputs.append(build_model(config)(tokens).logits)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert not torch.allclose(outputs[0], outputs[2])


# ---- validation -----------------------------------------------------------------------------


def test_bad_split_names_the_key_and_valid_values() -> None:
    config = arch(d_model=24, heads=2, lsra_split=0.25)  # a = 6, not a multiple of 4
    with pytest.raises(InputError) as err:
        build_model(config)
    assert err.value.key == "lsra_split"
    listed = str(err.value).rsplit(": ", 1)[1].split(", ")
    assert len(listed) == 24 // 4
    for value in listed:  # every value the message offers must be accepted
        build_model(arch(d_model=24, heads=2, lsra_split=float(value)))


def test_bad_split_in_the_encoder_names_the_encoder_key() -> None:
    config = arch(task="seq2seq", encoder_lsra_split=0.25)
    with pytest.raises(InputError) as err:
        estimate_costs(config)
    assert err.value.key == "encoder.lsra_split"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"attn_dim": 12}, "attn_dim"),
        ({"window": 4}, "window"),
        ({"conv_kernel": 1}, "conv_kernel"),
        ({"lsra_split": 0.1}, "lsra_split"),  # rounds to 2 channels: fewer than one head pair
        ({"memory": "xl", "mem_len": 4}, "memory"),
    ],
)
def test_unsupported_combinations_are_input_errors(overrides: dict, key: str) -> None:
    with pytest.raises(InputError) as err:
        build_model(arch(**overrides))
    assert err.value.key == key


def test_kernel_of_one_is_fine_without_a_convolution_branch() -> None:
    build_model(arch(lsra_split=1.0, conv_kernel=1))


# ---- costs ----------------------------------------------------------------------------------


def random_layer(rng: random.Random) -> tuple[int, dict[str, Any]]:
    """heads, and per-layer keys whose split always fits: a = 2h*m_a, d = 2h*(m_a + m_c)."""
    heads = rng.choice([1, 2, 3])
    return heads, {
        "heads": heads,
        "conv_type": rng.choice(CONV_TYPES),
        "conv_kernel": rng.randint(2, 9),
    }


def test_module_costs_equal_measured_exactly() -> None:
    rng = random.Random(0)
    torch.manual_seed(0)
    for _ in range(30):
        heads, layer = random_layer(rng)
        attn_pairs, conv_pairs = rng.randint(1, 3), rng.randint(0, 3)
        d = 2 * heads * (attn_pairs + conv_pairs)
        config = arch(d_model=d, lsra_split=attn_pairs / (attn_pairs + conv_pairs), **layer)
        ctx = context(config, causal=rng.random() < 0.5)
        module = LongShortRangeAttention(ctx)
        tokens = rng.randint(1, 12)
        family = attention_family("lsra")
        assert (
            family.macs(ctx, tokens, 0) == measured_macs(module, torch.randn(1, tokens, d))["total"]
        ), (config.to_dict(), tokens)
        assert family.params(ctx) == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("task", ["causal_lm", "seq2seq"])
def test_model_costs_match_measured(task: str) -> None:
    rng = random.Random(1 if task == "seq2seq" else 2)
    for _ in range(8):
        n_layers = rng.randint(1, 3)
        heads = rng.choice([1, 2])
        pairs = rng.randint(2, 4)
        d = 2 * heads * pairs
        flat: dict[str, Any] = {
            "task": task,
            "d_model": d,
            "n_layers": n_layers,
            "heads": heads,
            "attention": [rng.choice(["lsra", "lsra", "full"]) for _ in range(n_layers)],
            "lsra_split": [rng.randint(1, pairs) / pairs for _ in range(n_layers)],
            "conv_type": [rng.choice(CONV_TYPES) for _ in range(n_layers)],
            "conv_kernel": [rng.randint(2, 7) for _ in range(n_layers)],
        }
        if task == "seq2seq":
            n_enc = rng.randint(1, 2)
            flat.update(
                n_encoder_layers=n_enc,
                encoder_attention="lsra",
                encoder_lsra_split=[rng.randint(1, pairs) / pairs for _ in range(n_enc)],
                encoder_conv_type=[rng.choice(CONV_TYPES) for _ in range(n_enc)],
                encoder_conv_kernel=[rng.randint(2, 7) for _ in range(n_enc)],
            )
        config = arch(**flat)
        torch.manual_seed(0)
        model = build_model(config)
        target, source = rng.randint(1, 10), rng.randint(1, 10)
        convention = CountingConvention(tokens=target, source_tokens=source)
        costs = estimate_costs(config, convention)
        tokens = torch.randint(0, 32, (1, target))
        if task == "seq2seq":
            measured = measured_macs(model, tokens, torch.randint(0, 32, (1, source)))["total"]
        else:
            measured = measured_macs(model, tokens)["total"]
        assert abs(costs.total_macs - measured) <= 0.01 * measured, config.to_dict()
        assert costs.params == sum(p.numel() for p in model.parameters()), config.to_dict()


# ---- the two paper spaces -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lite_transformer", "hat"])
def test_paper_spaces_load_and_their_accepted_samples_are_buildable(name: str) -> None:
    """The spaces' constraints must match what the families accept (costs validate first)."""
    space = load_space(name)
    assert space.task == "seq2seq"
    rng = random.Random(0)
    accepted = 0
    for _ in range(100):
        values = space.sample(rng)
        if space.violations(values):
            continue
        config = space.to_config(values)
        estimate_costs(config)  # raises InputError if any layer's family refuses it
        accepted += 1
        kinds = {layer.attention for layer in (*config.layers, *config.encoder_layers)}
        assert kinds == ({"lsra"} if name == "lite_transformer" else {"full"})
    assert accepted >= 50
