"""Memory measured on a CUDA device: the caching allocator's peak for the workloads that
``archsearch.costs.tracker`` measures on the CPU and ``archsearch.costs.peak_bytes`` estimates.

A profile's GPU memory budget (``gpu16_train``) is checked against the analytic figure, and the
analytic figure against the CPU tracker in the test suite. This module closes the loop where a
GPU is present: same model, same step, but the bytes come from ``torch.cuda.max_memory_allocated``.

One thing the allocator holds that belongs to no workload: cuBLAS keeps a workspace per thread
and stream (the forward's thread and autograd's backward thread each get one, 32 MiB apiece on
an H100 with PyTorch 2.11). ``workspace_baseline`` creates both before anything is measured and
returns what the device holds then, so the figures here are the workload's own bytes.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_map

from archsearch.config import ArchConfig
from archsearch.costs.tracker import measure_inference, measure_training, model_inputs
from archsearch.seeding import seeded


def cuda_available() -> bool:
    """True where a CUDA device can run the models (never on this project's CPU machine)."""
    return torch.cuda.is_available()


def workspace_baseline(device: torch.device | str = "cuda") -> int:
    """Bytes the allocator holds once cuBLAS has its forward and backward workspaces.

    A linear layer's forward and backward on ``device`` makes cuBLAS allocate them; everything
    else is freed, so what is left is the baseline every measurement here is taken above.
    """
    weight = torch.randn(64, 64, device=device, requires_grad=True)
    x = torch.randn(8, 64, device=device)
    torch.nn.functional.linear(x, weight, torch.zeros(64, device=device)).sum().backward()
    del weight, x
    gc.collect()
    torch.cuda.synchronize(device)
    return torch.cuda.memory_allocated(device)


def to_device(value: Any, device: torch.device | str) -> Any:
    """Every tensor in ``value`` (a tensor, a tuple of them, a recurrent state) on ``device``."""
    return tree_map(lambda t: t.to(device) if isinstance(t, torch.Tensor) else t, value)


@dataclass(frozen=True)
class DeviceMemory:
    """Peak allocator bytes of one inference forward and one steady-state AdamW step."""

    device: str
    inference: int
    training: int
    workspace: int  # what the device held before the model (cuBLAS workspaces), not counted


def measure_on_device(
    model: torch.nn.Module,
    inputs: tuple,
    state: Any = None,
    device: torch.device | str = "cuda",
) -> DeviceMemory:
    """Move ``model``, ``inputs`` and ``state`` to ``device`` and measure there as the tracker
    does on the CPU (a warm-up forward first, so cached masks are not counted).

    The model is moved, not copied: the caller gets it back on ``device``. Nothing else of
    the caller's may live on the device, or it would be counted as the workload's.
    """
    with torch.cuda.device(device):  # the allocator statistics read below are this device's
        baseline = workspace_baseline(device)
        model = model.to(device)
        inputs, state = to_device(inputs, device), to_device(state, device)
        measure_inference(model, inputs, state, allocator_baseline=baseline)  # warm: masks
        inference = measure_inference(model, inputs, state, allocator_baseline=baseline)
        training = measure_training(model, inputs, inputs[0], state, allocator_baseline=baseline)
    return DeviceMemory(
        device=torch.cuda.get_device_name(device),
        inference=inference.peak,
        training=training.peak,
        workspace=baseline,
    )


def release(device: torch.device | str = "cuda") -> None:
    """Give cached blocks back, so the next measurement starts from the baseline alone."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()


def measure_config_on_device(
    config: ArchConfig, tokens: int, batch: int, device: torch.device | str = "cuda"
) -> DeviceMemory:
    """Build ``config`` (seed 0), measure it on ``device`` at ``batch`` x ``tokens``, release."""
    from archsearch.models import build_model

    with seeded(0):
        model = build_model(config)
        inputs, state = model_inputs(config, tokens, batch)
    try:
        return measure_on_device(model, inputs, state, device)
    finally:
        del model, inputs, state
        release(device)
