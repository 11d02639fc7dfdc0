"""Measured memory: live tensor bytes on this machine, the reference the analytic figures meet.

``LiveBytes`` is a ``TorchDispatchMode`` that sees every operator call (forward, backward and the
optimizer's): each storage an operator creates is counted from its creation until a weakref
finalizer on its ``untyped_storage()`` fires, and the peak of the sum is kept. Views share their
base's storage and are counted once; tensors that exist before (weights, inputs, optimizer state)
are registered with ``track`` so their frees count too.

What it sees is what PyTorch's caching allocator is asked for by operators: on a GPU, the
figure ``torch.cuda.max_memory_allocated`` reports above the cuBLAS workspaces (checked on an
H100 by ``tests/test_cuda.py``; ``measure_call`` can take the allocator's figure itself). What
it does not see: scratch buffers a kernel allocates for itself and frees before returning (the
CPU flash-attention kernel's per-thread blocks, for one), allocator rounding, and the Python
process around the tensors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from archsearch.config import ArchConfig


class LiveBytes(TorchDispatchMode):
    """Sum of the bytes of live storages created by operators (or registered), and its peak."""

    def __init__(self) -> None:
        super().__init__()
        self._sizes: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.peak_op = ""
        self._op = ""

    def track(self, tensors: Iterable[Any]) -> None:
        """Count tensors that already exist (weights, inputs, state) until they are freed."""
        for tensor in tensors:
            self._add(tensor)

    def reset_peak(self) -> None:
        """Start a new peak from what is live now (e.g. between a warm-up and a measured step)."""
        self.peak = self.current
        self.peak_op = ""

    def _add(self, tensor: Any) -> None:
        if not isinstance(tensor, torch.Tensor) or tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._sizes:
            return
        size = storage.nbytes()
        self._sizes[key] = size
        self.current += size
        if self.current > self.peak:
            self.peak = self.current
            self.peak_op = self._op
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._sizes.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self._op = str(func)
        out = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(out)[0]:
            self._add(tensor)
        return out


@dataclass(frozen=True)
class MeasuredMemory:
    """Peak live bytes of one measured call, and what was live before it started."""

    peak: int
    before: int  # weights, inputs (and optimizer state, gradients) registered up front
    peak_op: str  # the operator whose output set the peak

    def to_dict(self) -> dict[str, Any]:
        return {"peak": self.peak, "before": self.before, "peak_op": self.peak_op}


def _model_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def _state_tensors(state: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(state)[0] if isinstance(t, torch.Tensor)]


def measure_call(
    fn: Callable[[], Any], existing: list[Any], allocator_baseline: int | None = None
) -> MeasuredMemory:
    """Peak live bytes while ``fn`` runs, ``existing`` tensors counted from the start.

    ``existing`` is emptied once tracked, so this list never keeps a tensor alive that ``fn``
    frees (gradients set to None, for one). With ``allocator_baseline`` (tensors on a CUDA
    device) the figure is the caching allocator's own peak above that baseline instead: the
    allocator already holds every existing tensor, and the baseline removes what is not the
    workload's (cuBLAS workspaces, see ``archsearch.costs.cuda_memory``).
    """
    if allocator_baseline is not None:
        existing.clear()
        return _allocator_call(fn, allocator_baseline)
    tracker = LiveBytes()
    tracker.track(existing)
    existing.clear()
    before = tracker.current
    tracker.reset_peak()
    with tracker:
        result = fn()
        del result
    return MeasuredMemory(peak=tracker.peak, before=before, peak_op=tracker.peak_op)


def _allocator_call(fn: Callable[[], Any], baseline: int) -> MeasuredMemory:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    del result
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return MeasuredMemory(peak=peak - baseline, before=before - baseline, peak_op="")


@torch.no_grad()
def measure_inference(
    model: torch.nn.Module,
    inputs: tuple,
    state: Any = None,
    allocator_baseline: int | None = None,
    extra: dict[str, Any] | None = None,
) -> MeasuredMemory:
    """One eval-mode forward over ``inputs`` (token tensors); ``state`` is recurrent memory,
    ``extra`` more keyword inputs (a retrieving model's ``neighbours``)."""
    model.eval()
    kwargs = {**({} if state is None else {"state": state}), **(extra or {})}
    existing = [*_model_tensors(model), *inputs, *_state_tensors(state), *_state_tensors(extra)]
    return measure_call(lambda: model(*inputs, **kwargs), existing, allocator_baseline)


def measure_training(
    model: torch.nn.Module,
    inputs: tuple,
    targets: torch.Tensor,
    state: Any = None,
    allocator_baseline: int | None = None,
    extra: dict[str, Any] | None = None,
) -> MeasuredMemory:
    """A steady-state AdamW step as ``archsearch.evaluate.train.fit`` takes it.

    One unmeasured step first creates the optimizer state and gradients; the measured step then
    runs forward with the previous gradients still alive (``fit`` sets them to None only after
    the forward), cross-entropy plus the auxiliary loss, backward and the optimizer step.
    """
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    kwargs = {**({} if state is None else {"state": state}), **(extra or {})}

    def step() -> Any:
        output = model(*inputs, **kwargs)
        logits, new_state = output.logits, output.state  # fit carries the state on
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        total = loss + output.aux_loss
        del output, logits, loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return new_state

    step()
    existing = [
        *_model_tensors(model),
        *(p.grad for p in model.parameters() if p.grad is not None),
        *(v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)),
        *inputs,
        targets,
        *_state_tensors(state),
        *_state_tensors(extra),
    ]
    return measure_call(step, existing, allocator_baseline)


def model_inputs(config: ArchConfig, tokens: int, batch: int) -> tuple[tuple, Any]:
    """Random token inputs for ``batch`` x ``tokens`` and a full recurrent state (if any)."""
    from archsearch.models.memory import steady_state

    ids = torch.randint(0, config.vocab_size, (batch, tokens))
    if config.task == "seq2seq":
        return (ids, torch.randint(0, config.vocab_size, (batch, tokens))), None
    return (ids,), steady_state(config, batch)
