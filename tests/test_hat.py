"""HAT's architectures: separate encoder/decoder widths, per-layer cross-attention heads,
cross-attention over the last 1-3 encoder layers, biases and post-norm blocks.

References, all independent of archsearch's formulas: the SubTransformers HAT published
(mit-han-lab/hardware-aware-transformers, configs/*/subtransformer/*.yml) with the #Params and
FLOPs its README table gives for them, FlopCounterMode and numel on the built models, and the
encoder outputs seen by forward hooks.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, InputError, build_model, estimate_costs, load_space
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.space import SearchSpace

ENDE = {-1: 1, 1: 2, 2: 3}  # HAT's decoder-arbitrary-ende-attn value -> our cross_layers


def hat(
    encoder: tuple[int, list[int], list[int]],
    decoder: tuple[int, list[int], list[int], list[int], list[int]],
    vocab: int = 256,
) -> dict[str, Any]:
    """A HAT SubTransformer file's values in archsearch's flat form. ``encoder``: embed dim, FFN
    dims, self-attention heads; ``decoder``: embed dim, FFN dims, self heads, ende heads,
    arbitrary-ende-attn values."""
    enc_d, enc_ffn, enc_heads = encoder
    dec_d, dec_ffn, dec_heads, ende_heads, ende = decoder
    return {
        "task": "seq2seq",
        "vocab_size": vocab,
        "max_seq_len": 256,
        "n_encoder_layers": len(enc_ffn),
        "n_layers": len(dec_ffn),
        "encoder_d_model": enc_d,
        "d_model": dec_d,
        "attention": "full",
        "attn_dim": 512,  # qkv-dim: 512 in every HAT SuperTransformer config
        "ffn": "dense",
        "activation": "relu",
        "bias": True,
        "norm": "post",
        "encoder_ffn_dim": enc_ffn,
        "ffn_dim": dec_ffn,
        "encoder_heads": enc_heads,
        "heads": dec_heads,
        "cross_heads": ende_heads,
        "cross_layers": [ENDE[value] for value in ende],
    }


# name -> (flat config, HAT's published #Params in millions and FLOPs in G, from the README
# table of mit-han-lab/hardware-aware-transformers: embeddings and output layer excluded,
# 30 source and 30 target tokens for WMT).
PUBLISHED: dict[str, tuple[dict[str, Any], float, float]] = {
    # configs/wmt14.en-de/subtransformer/HAT_wmt14ende_raspberrypi@3.5s_bleu@25.8.yml
    "wmt14ende_raspberrypi@3.5s": (
        hat(
            (512, [1024, 3072, 3072, 2048, 2048, 2048], [4, 8, 4, 4, 4, 8]),
            (512, [3072], [8], [8], [-1]),
        ),
        25.22,
        1.53,
    ),
    # configs/wmt14.en-de/subtransformer/HAT_wmt14ende_raspberrypi@6.9s_bleu@28.4.yml
    "wmt14ende_raspberrypi@6.9s": (
        hat(
            (512, [3072] * 6, [8, 4, 8, 8, 8, 8]),
            (
                512,
                [2048, 2048, 3072, 3072, 2048],
                [8, 8, 8, 4, 8],
                [4, 8, 8, 8, 8],
                [-1, 1, 1, 1, -1],
            ),
        ),
        48.33,
        3.02,
    ),
    # configs/wmt14.en-de/subtransformer/HAT_wmt14ende_titanxp@146.7ms_bleu@28.1.yml
    "wmt14ende_titanxp@146.7ms": (
        hat(
            (640, [3072] * 6, [4, 8, 8, 8, 4, 4]),
            (640, [3072] * 3, [8, 8, 8], [4, 8, 8], [-1, 1, 1]),
        ),
        51.20,
        3.17,
    ),
    # configs/wmt14.en-fr/subtransformer/HAT_wmt14enfr_xeon@394.5ms_bleu@41.4.yml
    "wmt14enfr_xeon@394.5ms": (
        hat(
            (512, [3072] * 6, [8] * 6),
            (512, [3072] * 5, [8, 8, 8, 8, 4], [4, 8, 8, 8, 8], [-1, 2, 1, 2, -1]),
        ),
        51.48,
        3.28,
    ),
    # configs/wmt19.en-de/subtransformer/HAT_wmt19ende_titanxp@55.7ms_bleu@42.4.yml
    "wmt19ende_titanxp@55.7ms": (
        hat((640, [3072] * 6, [8] * 6), (512, [3072], [8], [8], [1])),
        36.89,
        2.27,
    ),
    # configs/wmt19.en-de/subtransformer/HAT_wmt19ende_titanxp@93.2ms_bleu@44.4.yml
    "wmt19ende_titanxp@93.2ms": (
        hat((640, [3072] * 6, [8] * 6), (512, [3072, 3072], [8, 8], [8, 8], [-1, 2])),
        42.28,
        2.63,
    ),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_subtransformers_cost_what_hat_publishes(name: str) -> None:
    """HAT's convention (the default one): #Params to the published rounding, FLOPs = 2 x MACs
    within one unit of the published last digit (HAT profiles with torchprofile)."""
    flat, params_m, flops_g = PUBLISHED[name]
    costs = estimate_costs(ArchConfig.from_dict(flat), CountingConvention(tokens=30))
    assert costs.convention.encoder_tokens == 30
    assert set(costs.convention.exclude) == {"embedding", "output"}
    assert abs(costs.counted_params / 1e6 - params_m) <= 0.005, costs.counted_params
    assert abs(2 * costs.macs / 1e9 - flops_g) <= 0.01, costs.macs


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_subtransformers_build_and_cost_what_they_compute(name: str) -> None:
    flat = {**PUBLISHED[name][0], "vocab_size": 32}
    config = ArchConfig.from_dict(flat)
    assert ArchConfig.from_dict(config.to_dict()) == config
    torch.manual_seed(0)
    model = build_model(config)
    target, source = 3, 4
    measured = measured_macs(
        model, torch.randint(0, 32, (1, target)), torch.randint(0, 32, (1, source))
    )
    costs = estimate_costs(config, CountingConvention(tokens=target, source_tokens=source))
    assert costs.total_macs == measured["total"]
    assert costs.params == sum(p.numel() for p in model.parameters())


def _in_space(space: SearchSpace, flat: dict[str, Any]) -> bool:
    for key, value in space.fixed.items():
        if flat.get(key) != value:
            return False
    for key, param in space.params.items():
        values = flat[key] if isinstance(flat[key], list) else [flat[key]]
        if param.kind == "choice" and not set(values) <= set(param.choices):
            return False
        if param.kind == "int" and not all(param.low <= v <= param.high for v in values):
            return False
    return True


def test_hat_space_holds_the_published_subtransformers_and_its_samples_cost() -> None:
    space = load_space("hat")
    for name, (flat, _, _) in PUBLISHED.items():
        assert _in_space(space, flat), name
        assert space.to_config(flat) == ArchConfig.from_dict(flat)
    rng = random.Random(0)
    reads, widths, own_cross_heads = set(), set(), False
    for _ in range(40):
        values = space.sample(rng)
        assert not space.violations(values)
        config = space.to_config(values)
        costs = estimate_costs(config)  # the family checks run first
        assert costs.macs > 0 and costs.counted_params > 0
        reads |= {layer.cross_layers for layer in config.layers}
        widths.add((config.encoder_width, config.d_model))
        own_cross_heads |= any(layer.cross_head_count != layer.heads for layer in config.layers)
    assert reads == {1, 2, 3}
    assert widths == {(e, d) for e in (512, 640) for d in (512, 640)}
    assert own_cross_heads


# ---- the model: what the decoder reads, post-norm, causality ---------------------------------

SMALL = {
    "task": "seq2seq",
    "vocab_size": 40,
    "max_seq_len": 32,
    "d_model": 16,
    "encoder_d_model": 24,
    "n_layers": 3,
    "n_encoder_layers": 3,
    "heads": 2,
    "encoder_heads": 4,
    "cross_heads": [4, 1, 2],
    "cross_layers": [1, 2, 3],
    "bias": True,
}


@pytest.mark.parametrize("norm", ["pre", "post"])
@torch.no_grad()
def test_cross_attention_reads_the_last_encoder_layers_joined_last_first(norm: str) -> None:
    config = ArchConfig.from_dict({**SMALL, "norm": norm})
    torch.manual_seed(0)
    model = build_model(config).eval()
    outputs: list[torch.Tensor] = []
    for block in model.encoder:
        block.register_forward_hook(lambda m, i, o: outputs.append(o[0]))
    read: list[torch.Tensor] = []
    for block in model.decoder:
        block.cross.k.register_forward_hook(lambda m, i, o: read.append(i[0]))
    model(torch.randint(0, 40, (2, 5)), torch.randint(0, 40, (2, 7)))
    normed = [model.encoder_norm(out) for out in outputs]  # identity in a post-norm model
    for layer, seen in zip(config.layers, read, strict=True):
        expected = torch.cat(normed[::-1][: layer.cross_layers], dim=1)
        assert seen.shape == (2, 7 * layer.cross_layers, 24)
        torch.testing.assert_close(seen, expected, rtol=0, atol=0)
    if norm == "post":  # every block ends in a layer norm (fresh: unit weight, zero bias)
        for out in outputs:
            torch.testing.assert_close(out.mean(-1), torch.zeros(out.shape[:-1]), atol=1e-5, rtol=0)
    else:
        assert not torch.allclose(outputs[-1].mean(-1), torch.zeros(2, 7), atol=1e-3)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_hat_models_stay_causal_and_every_parameter_learns(norm: str) -> None:
    config = ArchConfig.from_dict({**SMALL, "norm": norm})
    torch.manual_seed(0)
    model = build_model(config)
    source = torch.randint(0, 40, (2, 6))
    target = torch.randint(0, 40, (2, 8))
    changed = target.clone()
    changed[:, 4:] = (changed[:, 4:] + 3) % 40
    with torch.no_grad():
        a, b = model(target, source).logits, model(changed, source).logits
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    out = model(target, source)
    F.cross_entropy(out.logits.reshape(-1, 40), target.reshape(-1)).backward()
    names = {name for name, _ in model.named_parameters()}
    assert any(name.startswith("source_embed.") for name in names)  # the encoder's own table
    assert any(name.endswith("cross.k.bias") for name in names)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# ---- what is refused, with the key -----------------------------------------------------------

REFUSED = [
    ({"n_layers": 2, "cross_heads": 2}, "cross_heads"),
    ({"n_layers": 2, "cross_layers": 2}, "cross_layers"),
    ({"n_layers": 2, "encoder_d_model": 32}, "encoder_d_model"),
    ({**SMALL, "encoder_cross_layers": 2}, "encoder_cross_layers"),
    ({**SMALL, "n_encoder_layers": 2}, "cross_layers"),  # layer 2 reads 3 of 2
    ({**SMALL, "cross_heads": 3}, "cross_heads"),  # 16 is not divisible by 3
    ({**SMALL, "norm": "sandwich"}, "norm"),
    ({**SMALL, "bias": "yes"}, "bias"),
    ({**SMALL, "encoder_d_model": 0}, "encoder_d_model"),
]


@pytest.mark.parametrize(("flat", "key"), REFUSED)
def test_bad_hat_keys_are_refused_with_the_key(flat: dict[str, Any], key: str) -> None:
    with pytest.raises(InputError) as caught:
        ArchConfig.from_dict(flat)
    assert caught.value.key == key


def test_bias_is_refused_for_families_without_a_biased_variant() -> None:
    config = ArchConfig.from_dict({"n_layers": 1, "d_model": 16, "attention": "lsh", "bias": True})
    with pytest.raises(InputError) as caught:
        estimate_costs(config)
    assert caught.value.key == "bias" and "lsh" in str(caught.value)


def test_spaces_accept_cross_keys_per_layer_for_seq2seq_only() -> None:
    space = {
        "name": "x",
        "task": "seq2seq",
        "fixed": {"n_encoder_layers": 2, "d_model": 16, "heads": 2},
        "params": {
            "n_layers": {"int": [1, 3]},
            "cross_heads": {"choice": [1, 2], "per_layer": True},
            "cross_layers": {"choice": [1, 2], "per_layer": True},
            "norm": {"choice": ["pre", "post"]},
        },
    }
    loaded = SearchSpace.from_dict(space)  # no encoder_cross_* demanded
    config = loaded.to_config(loaded.sample(random.Random(1)))
    assert all(layer.cross_head_count in (1, 2) for layer in config.layers)
    causal = {**space, "task": "causal_lm", "fixed": {"d_model": 16, "heads": 2}}
    with pytest.raises(InputError) as caught:
        SearchSpace.from_dict(causal)
    assert caught.value.key == "params.cross_heads"
    with pytest.raises(InputError) as caught:
        SearchSpace.from_dict({**space, "params": {"encoder_cross_heads": {"choice": [1]}}})
    assert caught.value.key == "params.encoder_cross_heads"


def test_fairseq_blocks_export_to_onnx(tmp_path: Any) -> None:
    """write_onnx keeps a graph only when onnxruntime agrees with PyTorch on several lengths;
    HAT's seq2seq models pass its checks too (one graph with both inputs: the registry's
    ``task=seq2seq,hat`` case runs it in onnxruntime)."""
    pytest.importorskip("onnxruntime")
    from archsearch.export.onnx_model import check_exportable, write_onnx

    causal = ArchConfig.from_dict(
        {
            "vocab_size": 40,
            "max_seq_len": 32,
            "d_model": 16,
            "n_layers": 1,
            "heads": 2,
            "bias": True,
            "norm": "post",
            "activation": "relu",
        }
    )
    assert write_onnx(causal, {"test": "fairseq"}, tmp_path / "m.onnx", seed=0).exists()
    check_exportable(ArchConfig.from_dict(SMALL))
