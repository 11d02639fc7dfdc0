"""``archsearch compress``: pruning, int8, the safetensors layout, the int8 ONNX graph, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_PROFILE, TINY_RECIPE, write_yaml

from archsearch import ArchConfig, build_model
from archsearch.cli import main
from archsearch.compress.linears import prunable, quantizable
from archsearch.compress.prune import Pruning, finetune, nonzero_parameters, prune
from archsearch.compress.quantize import int8_modules, quantize_int8
from archsearch.compress.store import data_bytes, load_compressed, save_compressed
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import validate
from archsearch.seeding import seeded

ARCH = {"vocab_size": 256, "max_seq_len": 32, "d_model": 32, "n_layers": 2, "heads": 2}
# onnxruntime's int8 graph against PyTorch's int8 model: both quantize the same weights with
# one symmetric scale per tensor but round activations differently, so they differ by
# quantization noise. Stated bound: mean |difference| <= 5% and max <= 50% of the float
# logits' standard deviation (measured here: about 1% and 30%).
INT8_ONNX_MEAN, INT8_ONNX_MAX = 0.05, 0.5


def _model(**changes: Any) -> tuple[torch.nn.Module, ArchConfig]:
    config = ArchConfig.from_dict({**ARCH, **changes})
    return build_model(config, seed=0).eval(), config


@pytest.mark.parametrize("method", ["magnitude", "structured"])
def test_pruning_removes_the_smallest_weights_of_every_prunable_linear(method: str) -> None:
    model, _ = _model(tie_embeddings=False, embed_dim=16)
    before = {
        n: m.weight.detach().clone() for n, m in model.named_modules() if n in prunable(model)
    }
    assert "head.logits" in before and "embed.project" in before
    prune(model, Pruning(method, 0.5))
    modules = dict(model.named_modules())
    for name, weight in before.items():
        after = modules[name].weight.detach()
        gone = after == 0
        if method == "magnitude":
            assert int(gone.sum()) == round(0.5 * weight.numel()), name
            assert weight[gone].abs().max() <= weight[~gone].abs().min(), name
        else:
            rows = gone.all(dim=1)
            assert int(rows.sum()) == round(0.5 * weight.shape[0]), name
            assert torch.equal(gone, rows.unsqueeze(1).expand_as(gone)), name  # whole rows
            norms = weight.norm(dim=1)
            assert norms[rows].max() <= norms[~rows].min(), name
        assert torch.equal(after[~gone], weight[~gone])


def test_a_tied_output_layer_is_neither_pruned_nor_quantized() -> None:
    model, _ = _model()  # tie_embeddings defaults to True
    assert "head.logits" not in prunable(model)
    assert "head.logits" not in int8_modules(quantize_int8(model))


def test_the_sparse_ffn_keeps_the_weights_it_reads_directly_in_float() -> None:
    model, _ = _model(ffn="sparse", sparsity=4)
    names = quantizable(model)
    assert "blocks.0.ffn.up" in prunable(model) and "blocks.0.ffn.up" not in names
    assert "blocks.0.ffn.controller.0" in names
    quantized = quantize_int8(model)
    assert "blocks.0.ffn.controller.0" in int8_modules(quantized)
    assert "blocks.0.ffn.up" not in int8_modules(quantized)
    tokens = torch.randint(0, 256, (2, 16))
    with torch.no_grad():  # runs; a quantized controller picks other units for a few tokens
        reference = model(tokens).logits
        difference = (quantized(tokens).logits - reference).abs()
    assert float(difference.median()) < 0.1 * float(reference.std())  # int8 noise


def test_finetune_recovers_and_pruned_weights_stay_exactly_zero() -> None:
    recipe = Recipe.from_dict({**TINY_RECIPE, "token_budget": 4096})
    model, _ = _model()
    with seeded(0):
        from archsearch.evaluate.train import fit

        fit(model, recipe)
    masks = prune(model, Pruning("magnitude", 0.7))
    pruned_bpb = validate(model, make_batches(recipe), recipe)["val_bpb"]
    finetune(model, masks, recipe, 2048)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        assert bool((modules[name].weight[~mask] == 0).all()), name
    recovered = validate(model, make_batches(recipe), recipe)["val_bpb"]
    assert recovered < pruned_bpb, (recovered, pruned_bpb)


def test_pruned_int8_file_rebuilds_exactly_and_is_smaller_than_dense_int8(tmp_path: Path) -> None:
    model, config = _model(ffn="switch_moe", experts=2, embed_dim=16)
    dense = save_compressed(quantize_int8(model), config, tmp_path / "dense.safetensors")
    masks = prune(model, Pruning("magnitude", 0.5))
    quantized = quantize_int8(model)
    path = save_compressed(quantized, config, tmp_path / "sparse.safetensors", pruned=list(masks))
    # Each pruned weight keeps its non-zero values and one mask bit per weight.
    int8 = set(int8_modules(quantized))
    saved = 0
    for name, mask in masks.items():
        width = 1 if name in int8 else 4
        saved += width * int((~mask).sum()) - -(-mask.numel() // 8)
    assert data_bytes(dense) - data_bytes(path) == saved > 0
    rebuilt, _, _ = load_compressed(path)
    tokens = torch.randint(0, 256, (3, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(rebuilt(tokens).logits, quantized(tokens).logits)
    assert nonzero_parameters(rebuilt) == nonzero_parameters(quantized)
    expected = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    assert nonzero_parameters(quantized) <= expected  # int8 rounding can only add zeros


def test_weights_load_from_a_float_file_compress_wrote(tmp_path: Path) -> None:
    from archsearch.compress.flow import load_weights

    model, config = _model(share_layers=True)  # tied output and shared layers: aliases
    path = save_compressed(model, config, tmp_path / "float.safetensors")
    fresh = build_model(config, seed=1)
    load_weights(fresh, path)
    theirs = fresh.state_dict()
    for name, ours in model.state_dict().items():
        assert torch.equal(ours, theirs[name]), name


@pytest.mark.parametrize(
    "changes",
    [
        {"tie_embeddings": False, "ffn": "switch_moe", "experts": 2},
        # batched constants in the graph (the finder's projections, never int8) and the
        # neighbours as a second input; finder_k = max_seq_len, as with fewer keys int8 noise
        # flips the finder's picks (measured: as far from PyTorch's int8 model as int8 from
        # float, up to 1.3x the logits' spread)
        {"attention": "sparsefinder", "finder_k": 32, "retrieval_chunk": 8, "retrieve": True},
    ],
)
def test_the_int8_onnx_graph_agrees_with_the_pytorch_int8_model(
    changes: dict[str, Any], tmp_path: Path
) -> None:
    import onnx
    import onnxruntime

    from archsearch.compress.onnx_int8 import write_int8_onnx
    from archsearch.export.onnx_model import export_graph
    from archsearch.families.retrieval import retrieved_chunks

    model, config = _model(**changes)
    float_path = export_graph(model, config, tmp_path / "float.onnx")
    path = write_int8_onnx(float_path, tmp_path / "int8.onnx", model)
    quantized = quantize_int8(model)
    integer = [n for n in onnx.load(str(path)).graph.node if "Integer" in n.op_type]
    assert len(integer) == len(int8_modules(quantized))  # the same layers are int8
    assert _weight_bytes(path) < 0.5 * _weight_bytes(float_path)  # (nodes carry debug text)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(6)
    length = config.max_seq_len if config.retrieval_chunk else 24  # (retrieval: a fixed length)
    tokens = torch.randint(0, 256, (2, length), generator=generator)
    feed, kwargs = {"input_ids": tokens}, {}
    if config.retrieval_chunk:
        chunks = retrieved_chunks(config, length)
        shape = (2, chunks, config.retrieval_k, 2 * config.retrieval_chunk)
        feed["neighbours"] = kwargs["neighbours"] = torch.randint(
            0, 256, shape, generator=generator
        )
    with torch.no_grad():
        ours, reference = quantized(tokens, **kwargs).logits, model(tokens, **kwargs).logits
    theirs = torch.from_numpy(session.run(None, {k: v.numpy() for k, v in feed.items()})[0])
    spread = float(reference.std())
    difference = (theirs - ours).abs()
    assert float(difference.mean()) <= INT8_ONNX_MEAN * spread
    assert float(difference.max()) <= INT8_ONNX_MAX * spread


def _weight_bytes(path: Path) -> int:
    import onnx
    from onnx import numpy_helper

    return sum(numpy_helper.to_array(i).nbytes for i in onnx.load(str(path)).graph.initializer)


def _cli_inputs(tmp_path: Path) -> dict[str, Path]:
    return {
        "arch": write_yaml(tmp_path / "arch.yaml", ARCH),
        "recipe": write_yaml(tmp_path / "recipe.yaml", {**TINY_RECIPE, "token_budget": 2048}),
        "profile": write_yaml(tmp_path / "profile.yaml", TINY_PROFILE),
    }


def test_cli_compresses_train_weights_and_reports_what_it_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _cli_inputs(tmp_path)
    common = [str(inputs["arch"]), f"--evaluator={inputs['recipe']}"]
    assert main(["train", *common, "--tokens=2048", f"--out={tmp_path / 'run'}"]) == 0
    trained = capsys.readouterr().out
    args = [
        "compress",
        *common,
        f"--weights={tmp_path / 'run'}",
        f"--profile={inputs['profile']}",
        "--int8",
        "--prune=structured",
        "--finetune-tokens=512",
        f"--out={tmp_path / 'out'}",
        "--onnx",
        "--json",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    base, small = result["models"]
    # The float model is train's: the same evaluator gives train's last validation figure.
    assert f"val {base['val_bpb']:.4f} bpb" in trained
    assert small["name"] == "structured50+int8" and small["finetuned_tokens"] == 512
    recipe = Recipe.from_dict({**TINY_RECIPE, "token_budget": 2048})
    for row in (base, small):
        path = Path(row["path"])
        assert row["file_bytes"] == path.stat().st_size
        rebuilt, _, _ = load_compressed(path)
        assert row["nonzero_params"] == nonzero_parameters(rebuilt)
        assert row["val_bpb"] == validate(rebuilt, make_batches(recipe), recipe)["val_bpb"]
        assert row["latency_ms"] > 0
    assert small["file_bytes"] < base["file_bytes"] / 2  # the float embedding table stays
    assert small["nonzero_params"] < base["nonzero_params"]
    assert {Path(f).suffix for f in result["files"]} == {".safetensors", ".onnx"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ([], "--int8"),
        (["--prune=magnitude", "--sparsity=1.5"], "--sparsity"),
        (["--int8", "--weights=/nonexistent/checkpoint.pt"], "--weights"),
        (["--int8", "--study=x"], "config"),
        (["--int8", "--finetune-tokens=-1"], "--finetune-tokens"),
        (["--prune=magnitude", "--finetune-lr=0"], "--finetune-lr"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragment: str
) -> None:
    inputs = _cli_inputs(tmp_path)
    argv = ["compress", str(inputs["arch"]), f"--evaluator={inputs['recipe']}", *extra]
    assert main([*argv, f"--out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


def test_compresses_a_study_trial_trained_as_its_evaluator_trained_it(
    micro_study: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from archsearch.search.trials import best_trial

    profile = write_yaml(tmp_path / "profile.yaml", TINY_PROFILE)
    args = ["compress", "--study=micro", f"--storage={micro_study['url']}", "--int8"]
    assert main([*args, f"--profile={profile}", f"--out={tmp_path}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    best = best_trial(optuna.load_study(study_name="micro", storage=micro_study["url"]))
    assert best is not None
    assert ArchConfig.from_dict(result["config"]) == ArchConfig.from_dict(best.user_attrs["arch"])
    # No --weights: trained here exactly as the search's evaluator trained the trial.
    assert result["models"][0]["val_bpb"] == pytest.approx(best.values[0], rel=1e-6)
    assert list(tmp_path.glob(f"micro-trial{best.number}-*.int8.safetensors"))
