"""CUDA paths and GPU memory: every family computes on a CUDA device what it computes on the
CPU, and the memory figures hold for the GPU's caching allocator.

Skipped where no CUDA device is present (CI and this project's CPU machine). On a GPU machine:
``pytest tests/test_cuda.py`` (it needs torch and pyyaml only, no Ray or Optuna).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import FAMILY_BASE, FAMILY_CASES, built_family

from archsearch import ArchConfig
from archsearch.costs import calibration
from archsearch.costs.cuda_memory import measure_on_device, release, to_device, workspace_baseline
from archsearch.costs.latency import TimingOptions
from archsearch.costs.tracker import measure_inference, measure_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TOLERANCE = 0.10  # analytic against measured, as on the CPU (test_memory_costs.py)
# The allocator hands out 512-byte multiples (a 32-float bias takes 512 bytes, not 128) and
# kernels keep a few KB of state: 5-9% of FAMILY_BASE's tiny steps, 0.01% at GPU_SIZES.
ALLOCATOR_ROUNDING = 0.02
# Large enough that rounding and kernel state vanish, small enough for any GPU: 15-42 MB per
# training step.
GPU_SIZES = {"d_model": 128, "max_seq_len": 256}
GPU_BATCH, GPU_TOKENS = 4, 256
MASKED_FUSED = ("local", "linformer")  # fused SDPA with an explicit mask


@pytest.fixture(autouse=True)
def exact_float32() -> Iterator[None]:
    """CUDA may compute float32 convolutions in TF32; the comparisons here need full float32."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    release()


def _built(case: str) -> tuple[ArchConfig, torch.nn.Module, tuple, Any]:
    config = ArchConfig.from_dict({**FAMILY_BASE, **GPU_SIZES, **FAMILY_CASES[case]})
    return (config, *built_family(config, GPU_BATCH, GPU_TOKENS))


def _loss_and_gradients(
    model: torch.nn.Module, inputs: tuple, state: Any
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss and every parameter's gradient on CPU tensors, dropout off so devices agree."""
    model.eval()
    kwargs = {} if state is None else {"state": state}
    output = model(*inputs, **kwargs)
    logits = output.logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), inputs[0].reshape(-1))
    (loss + output.aux_loss).backward()
    grads = {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().cpu(), grads


@pytest.mark.parametrize("case", sorted(FAMILY_CASES))
def test_loss_and_gradients_on_cuda_equal_the_cpu(case: str) -> None:
    _, model, inputs, state = _built(case)
    on_gpu = copy.deepcopy(model).cuda()
    cpu_loss, cpu_grads = _loss_and_gradients(model, inputs, state)
    gpu_loss, gpu_grads = _loss_and_gradients(
        on_gpu, to_device(inputs, "cuda"), to_device(state, "cuda")
    )
    torch.testing.assert_close(gpu_loss, cpu_loss, rtol=1e-5, atol=1e-5)
    assert gpu_grads.keys() == cpu_grads.keys() and cpu_grads, case
    for name, grad in cpu_grads.items():
        torch.testing.assert_close(gpu_grads[name], grad, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("case", sorted(FAMILY_CASES))
def test_allocator_peak_is_the_trackers_but_for_masked_fused_attention(case: str) -> None:
    """The tracker's figure (what ``archsearch.costs.peak_bytes`` is checked against) is what the
    GPU allocates, except scratch a kernel allocates inside one operator call, which no
    dispatch-level count sees. Of the families only the memory-efficient attention backward
    with an explicit mask needs enough to show (local and Linformer; README, GPU memory)."""
    config, model, inputs, state = _built(case)
    allocator = measure_on_device(model, inputs, state)  # leaves the model on the device
    inputs, state = to_device(inputs, "cuda"), to_device(state, "cuda")
    measured = {
        "inference": (allocator.inference, measure_inference(model, inputs, state).peak),
        "training": (allocator.training, measure_training(model, inputs, inputs[0], state).peak),
    }
    for workload, (on_gpu, tracker) in measured.items():
        assert on_gpu >= tracker * (1 - ALLOCATOR_ROUNDING), (case, workload, on_gpu, tracker)
        if config.layers[0].attention not in MASKED_FUSED or workload == "inference":
            assert on_gpu <= tracker * (1 + ALLOCATOR_ROUNDING), (case, workload, on_gpu, tracker)


def test_the_workspace_baseline_leaves_nothing_for_cublas_to_allocate() -> None:
    baseline = workspace_baseline()
    weight = torch.randn(256, 256, device="cuda", requires_grad=True)
    x = torch.randn(32, 256, device="cuda")
    (x @ weight).sum().backward()
    del x
    torch.cuda.synchronize()
    # only the weight and its gradient remain: no new workspace was created on either thread
    assert torch.cuda.memory_allocated() == baseline + 2 * weight.nbytes


def test_calibration_report_puts_the_gpu_figure_next_to_the_analytic_one() -> None:
    config = ArchConfig.from_dict(FAMILY_BASE)  # full attention: no scratch beyond the figure
    options = TimingOptions(warmup=1, min_repeats=2, max_repeats=3, min_time_s=0.0, clock="cpu")
    row = calibration.check_family(
        config, memory_tokens=256, memory_batch=4, latency_tokens=16, options=options
    )
    memory = row["memory"]
    assert memory["device"] == torch.cuda.get_device_name()
    for workload in ("inference", "training"):
        figures = memory[workload]
        assert figures["cuda"] > 0.3 * figures["measured"]  # a real figure, not the workspace
        assert abs(figures["cuda_error"]) <= TOLERANCE, (workload, figures)
        assert figures["cuda_error"] == pytest.approx(figures["analytic"] / figures["cuda"] - 1)


@pytest.mark.parametrize(
    "case", sorted(c for c in FAMILY_CASES if FAMILY_CASES[c].get("task") != "seq2seq")
)
def test_hf_export_trains_on_cuda_with_the_trainer(case: str, tmp_path: Path) -> None:
    """What `archsearch export --format hf` hands to other trainers runs on a GPU: the loss
    there is the CPU's, and transformers' Trainer takes steps on the device."""
    pytest.importorskip("transformers")
    from transformers import Trainer, TrainingArguments

    from archsearch.export.hf_remote.configuration_archsearch import ArchsearchConfig
    from archsearch.export.hf_remote.modeling_archsearch import ArchsearchForCausalLM

    config, _, _, _ = _built(case)
    torch.manual_seed(0)
    model = ArchsearchForCausalLM(ArchsearchConfig(arch=config.to_dict(), provenance={}))
    model.eval()  # no dropout or exploration noise, so devices agree; the Trainer sets train
    tokens = torch.randint(0, config.vocab_size, (2, 32))
    cpu_loss = model(input_ids=tokens, labels=tokens).loss
    model = model.cuda()
    gpu_loss = model(input_ids=tokens.cuda(), labels=tokens.cuda()).loss
    torch.testing.assert_close(gpu_loss.cpu(), cpu_loss, rtol=1e-5, atol=1e-5)

    rows = torch.randint(0, config.vocab_size, (8, 32))
    data = [{"input_ids": row, "labels": row} for row in rows]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    result = Trainer(model=model, args=arguments, train_dataset=data).train()
    assert result.global_step == 2 and math.isfinite(result.training_loss), case
    assert all(p.device.type == "cuda" for p in model.parameters())
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert changed, case
