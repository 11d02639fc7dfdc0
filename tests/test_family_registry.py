"""Every registered family, whatever its name, has every part: one suite over the registry.

A family added to ``archsearch.families`` is picked up here without editing this file; a part
it lacks (a wrong MAC or parameter formula, no activation bytes, a leak from the future, no
gradient, an ONNX graph that onnxruntime runs differently, unless its spec says why it cannot
export) fails its case.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import FAMILY_BASE, FAMILY_BATCH, FAMILY_CASES, FAMILY_TOKENS
from test_memory_costs import TOLERANCE, measured

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.config import LAYER_KEYS, LayerConfig
from archsearch.costs.peak_bytes import approximated, inference_memory, training_memory
from archsearch.costs.reference import measured_macs
from archsearch.families import BlockContext, FamilySpec, all_specs, memory_specs

SPECS = {f"{spec.kind}={spec.name}": spec for spec in all_specs()}
CASES = sorted(SPECS)
MEMORY_KEYS = 16  # recurrent-memory keys offered to families that read memory


def _config(case: str) -> ArchConfig:
    return ArchConfig.from_dict({**FAMILY_BASE, **FAMILY_CASES[case]})


def _contexts(spec: FamilySpec) -> list[tuple[BlockContext, int]]:
    """(where the block sits, extra memory keys): decoder, encoder, decoder with memory."""
    arch = _config(f"{spec.kind}={spec.name}")
    layer = arch.layers[0]
    out = [
        (BlockContext(layer=layer, arch=arch, causal=True), 0),
        (BlockContext(layer=layer, arch=arch, causal=False, encoder=True), 0),
    ]
    if spec.reads_memory:
        out.append((BlockContext(layer=layer, arch=arch, causal=True), MEMORY_KEYS))
    return out


@pytest.mark.parametrize("case", CASES)
def test_the_spec_is_complete(case: str) -> None:
    spec = SPECS[case]
    assert spec.kind in ("attention", "ffn")
    assert spec.activations is not None, "no activation bytes: memory would be approximated"
    assert spec.example("tests") is not None, "no example settings for the shared tests"
    assert case in FAMILY_CASES, "the memory tests (tracker, CUDA) would not cover it"
    assert issubclass(spec.module_class(), torch.nn.Module)
    defaults = LayerConfig()
    for setting in spec.settings:
        assert setting.name in LAYER_KEYS
        assert getattr(defaults, setting.name) == setting.default
        setting.check(setting.name, setting.default)  # the default passes its own check
    assert approximated(_config(case)) == ()


@pytest.mark.parametrize("case", CASES)
def test_analytic_macs_and_parameters_equal_the_built_module(case: str) -> None:
    spec = SPECS[case]
    for ctx, extra in _contexts(spec):
        torch.manual_seed(0)
        module = spec.build(ctx).eval()
        x = torch.randn(1, FAMILY_TOKENS, ctx.d_model)
        if spec.kind == "attention" and extra:
            macs = measured_macs(module, x, torch.randn(1, extra, ctx.d_model))["total"]
        else:
            macs = measured_macs(module, x)["total"]
        where = (ctx.causal, extra)
        assert macs == spec.macs(ctx, FAMILY_TOKENS, extra), where
        assert spec.params(ctx) == sum(p.numel() for p in module.parameters()), where
        buffers = sum(b.numel() * b.element_size() for b in module.buffers())
        assert spec.buffers(ctx) == buffers, where


@pytest.mark.parametrize("case", CASES)
def test_activation_bytes_match_the_tracker(case: str) -> None:
    config = _config(case)
    inference, training, _ = measured(config)
    estimate = inference_memory(config, FAMILY_TOKENS, FAMILY_BATCH).peak
    assert abs(estimate / inference - 1) <= TOLERANCE, (estimate, inference)
    estimate = training_memory(config, FAMILY_TOKENS, FAMILY_BATCH).peak
    assert abs(estimate / training - 1) <= TOLERANCE, (estimate, training)


@pytest.mark.parametrize("case", CASES)
@torch.no_grad()
def test_future_tokens_never_change_earlier_logits(case: str) -> None:
    config = _config(case)
    torch.manual_seed(0)
    model = build_model(config).eval()
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, config.vocab_size, (FAMILY_BATCH, FAMILY_TOKENS), generator=generator)
    for cut in (0, FAMILY_TOKENS // 3, FAMILY_TOKENS - 2):
        changed = tokens.clone()
        changed[:, cut + 1 :] = (changed[:, cut + 1 :] + 7) % config.vocab_size
        a, b = model(tokens).logits, model(changed).logits
        torch.testing.assert_close(a[:, : cut + 1], b[:, : cut + 1], msg=f"cut {cut}")


@pytest.mark.parametrize("case", CASES)
def test_one_training_step_lowers_the_loss(case: str) -> None:
    config = _config(case)
    torch.manual_seed(0)
    model = build_model(config).train()
    generator = torch.Generator().manual_seed(2)
    shape = (FAMILY_BATCH, FAMILY_TOKENS + 1)
    tokens = torch.randint(0, config.vocab_size, shape, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def loss() -> torch.Tensor:
        torch.manual_seed(3)  # the same routing noise both times
        out = model(tokens[:, :-1])
        task = F.cross_entropy(out.logits.flatten(0, 1), tokens[:, 1:].flatten())
        return task + out.aux_loss

    before = loss()
    before.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), name
    optimizer.step()
    optimizer.zero_grad()
    with torch.no_grad():
        after = loss()
    assert torch.isfinite(before) and after < before, (float(before), float(after))


ONNX_ATOL = ONNX_RTOL = 1e-4  # |onnxruntime - PyTorch| <= atol + rtol * |PyTorch|, float32
# The family cases plus what only the graph exports and int8 need apart: RETRO retrieval, whose
# forward takes its neighbours (the registry's other checks run it in tests/test_retrieval.py).
EXPORT_CASES = {
    **FAMILY_CASES,
    "retrieval": {"retrieval_chunk": 8, "retrieval_k": 2, "retrieve": True},
    "retrieval+xl": {
        "retrieval_chunk": 8,
        "retrieval_k": 2,
        "retrieve": True,
        "memory": "xl",
        "mem_len": 16,
    },
}


def _onnx_case(case: str) -> tuple[FamilySpec | None, ArchConfig]:
    spec = SPECS.get(case)
    small = {"max_seq_len": 32, "n_layers": 1}
    return spec, ArchConfig.from_dict({**FAMILY_BASE, **EXPORT_CASES[case], **small})


def _neighbours(config: ArchConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    from archsearch.families.retrieval import retrieved_chunks

    chunks = retrieved_chunks(config, config.max_seq_len)
    shape = (batch, chunks, config.retrieval_k, 2 * config.retrieval_chunk)
    return torch.randint(0, config.vocab_size, shape, generator=generator)


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_exports_to_onnx_and_onnxruntime_agrees(case: str, tmp_path: Any) -> None:
    """Every family, memory kind and task exports (or its spec says why not), and the graph's
    outputs equal PyTorch's within ONNX_ATOL/RTOL, at a length and batch it was not traced at
    (memory: two chained segments from a full state, next states compared too; retrieval: the
    neighbours are an input)."""
    import onnxruntime

    from archsearch.export.onnx_model import check_exportable, flat_state, warm_state, write_onnx

    spec, config = _onnx_case(case)
    if spec is not None and spec.onnx_refusal is not None:
        with pytest.raises(InputError) as caught:
            check_exportable(config)
        assert spec.onnx_refusal in str(caught.value)
        return
    path = write_onnx(config, {"test": case}, tmp_path / "model.onnx", seed=0)
    torch.manual_seed(0)
    model = build_model(config).eval()  # the seed write_onnx uses
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    fixed = session.get_inputs()[0].shape[1] == config.max_seq_len  # a static length
    tokens = 32 if fixed else 13
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(0, config.vocab_size, (3, tokens), generator=generator)
    source = torch.randint(0, config.vocab_size, (3, 9), generator=generator)

    def close(ours: torch.Tensor, theirs: Any) -> None:
        torch.testing.assert_close(torch.from_numpy(theirs), ours, atol=ONNX_ATOL, rtol=ONNX_RTOL)

    with torch.no_grad():
        if config.task == "seq2seq":
            assert names == ["input_ids", "source_ids"]
            got = session.run(None, {"input_ids": ids.numpy(), "source_ids": source.numpy()})
            close(model(ids, source).logits, got[0])
        elif config.retrieval_chunk and config.memory == "none":
            assert names == ["input_ids", "neighbours"]
            near = _neighbours(config, 3, generator)
            got = session.run(None, {"input_ids": ids.numpy(), "neighbours": near.numpy()})
            close(model(ids, neighbours=near).logits, got[0])
        elif config.memory != "none":
            warm = warm_state(model, config, 3, seed=9)
            per_layer = len(warm[0]) if isinstance(warm[0], tuple) else 1
            ours = theirs = flat_state(warm)
            for _ in range(2):
                feed = dict(zip(names, [ids.numpy(), *(t.numpy() for t in theirs)], strict=False))
                extra = {}
                if config.retrieval_chunk:  # the neighbours follow the state
                    assert names[-1] == "neighbours"
                    extra["neighbours"] = _neighbours(config, 3, generator)
                    feed["neighbours"] = extra["neighbours"].numpy()
                assert list(feed) == names
                got = session.run(None, feed)
                out = model(ids, state=_nest(ours, per_layer), **extra)
                close(out.logits, got[0])
                ours = flat_state(out.state)
                for mine, other in zip(ours, got[1:], strict=True):
                    close(mine, other)
                theirs = [torch.from_numpy(t) for t in got[1:]]
        else:
            assert names == ["input_ids"]
            close(model(ids).logits, session.run(None, {"input_ids": ids.numpy()})[0])


def _nest(flat: list[torch.Tensor], per_layer: int) -> Any:
    if per_layer > 1:
        return tuple(tuple(flat[i : i + per_layer]) for i in range(0, len(flat), per_layer))
    return tuple(flat)


INT8_HEADER_PER_TENSOR = 160  # JSON bytes per tensor entry at most, on top of the arch header


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_int8_file_stores_what_weight_bytes_int8_says_and_rebuilds(
    case: str, tmp_path: Any
) -> None:
    """Every family's ``int8_weights`` (through the ``weight_bytes_int8`` objective) equals the
    tensor data of the int8 file ``compress`` writes, byte for byte; the header on top stays
    within INT8_HEADER_PER_TENSOR per tensor plus the metadata; the model rebuilt from the file
    gives the quantized model's logits exactly."""
    from safetensors import safe_open

    from archsearch.compress.quantize import quantize_int8
    from archsearch.compress.store import data_bytes, load_compressed, save_compressed
    from archsearch.costs.int8 import int8_weight_bytes
    from archsearch.profiles import load_profile

    config = ArchConfig.from_dict({**FAMILY_BASE, **EXPORT_CASES[case]})
    model = quantize_int8(build_model(config, seed=0))
    path = save_compressed(model, config, tmp_path / "int8.safetensors")
    assert data_bytes(path) == int8_weight_bytes(config)
    profile = load_profile("mobile_100M")
    costs = estimate_costs(config)
    assert profile.metric("weight_bytes_int8", costs, config) == data_bytes(path)
    with safe_open(str(path), framework="pt") as handle:
        tensors = len(list(handle.keys()))
        metadata = sum(len(k) + len(v) for k, v in (handle.metadata() or {}).items())
    header = path.stat().st_size - data_bytes(path)
    assert header <= INT8_HEADER_PER_TENSOR * tensors + 2 * metadata + 64, (header, tensors)

    rebuilt, rebuilt_config, _ = load_compressed(path)
    assert rebuilt_config == config
    generator = torch.Generator().manual_seed(4)
    ids = torch.randint(0, config.vocab_size, (FAMILY_BATCH, FAMILY_TOKENS), generator=generator)
    args = (ids, ids.flip(1)) if config.task == "seq2seq" else (ids,)
    kwargs = {}
    if config.retrieval_chunk:
        from archsearch.families.retrieval import retrieved_chunks

        shape = (
            retrieved_chunks(config, FAMILY_TOKENS),
            config.retrieval_k,
            2 * config.retrieval_chunk,
        )
        kwargs["neighbours"] = torch.randint(0, config.vocab_size, (FAMILY_BATCH, *shape))
    with torch.no_grad():
        assert torch.equal(model(*args, **kwargs).logits, rebuilt(*args, **kwargs).logits)


def test_memory_kinds_have_examples_and_costs() -> None:
    for name, spec in memory_specs().items():
        config = ArchConfig.from_dict({**FAMILY_BASE, **(spec.example("tests") or {})})
        assert config.memory == name
        assert spec.extra_keys(config) >= 0 and spec.params(config) >= 0
        module = spec.build(config)
        assert isinstance(module, torch.nn.Module)
        assert spec.params(config) == sum(p.numel() for p in module.parameters())
