"""Brief training: the evaluator that scores a candidate by validation bits per byte.

The training text is laid out as ``batch_size`` parallel contiguous streams, so row b of step
i+1 continues row b of step i and a model with recurrent memory (Transformer-XL, compressive)
carries its state from one segment to the next, as it would in real use. Validation reads fixed
streams of the held-out files the same way, so every candidate sees the same validation bytes.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.corpus import load_corpus
from archsearch.evaluate.recipe import Recipe

LN2 = math.log(2.0)
Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured.

    ``diverged`` is True when training finished with finite losses but the model ended worse
    than a uniform guess over the vocabulary (NaN or inf raise ``CandidateFailed`` instead).
    ``curve`` holds every intermediate report, in order.
    """

    val_bpb: float
    train_bpb: float
    tokens: int
    steps: int
    wall_s: float
    cpu_s: float
    diverged: bool
    data_fingerprint: str
    curve: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["curve"] = [dict(point) for point in self.curve]
        return out


def evaluate(
    config: ArchConfig,
    recipe: Recipe,
    *,
    report: Report | None = None,
    threads: int = 1,
) -> EvalResult:
    """Build ``config``'s model, train it for the recipe's budget and measure validation bpb.

    Deterministic given ``recipe.seed`` and ``threads``. ``report`` receives ``{"step",
    "tokens", "val_bpb", "train_bpb"}`` at each of the recipe's ``eval_points`` (the last one is
    the end of training), so a scheduler can stop weak trials early. Raises ``CandidateFailed``
    when the loss or the gradient becomes NaN or infinite.
    """
    check_compatible(config, recipe)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"must be a positive integer, got {threads!r}", key="threads")
    # AdamW imports torch._dynamo when first built (seconds of CPU): do it before the clocks
    # start, so the first candidate of a worker is not charged for a one-time import.
    importlib.import_module("torch._dynamo")

    wall_start, cpu_start = time.perf_counter(), time.process_time()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        corpus = load_corpus(recipe.data)
        # Seed a private copy of the global generator: weights, dropout and random features
        # draw from it, and the caller's random stream is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            from archsearch.models import build_model

            model = build_model(config)
            curve = fit(model, recipe, report=report)
    finally:
        torch.set_num_threads(previous_threads)
    last = curve[-1]
    return EvalResult(
        val_bpb=last["val_bpb"],
        train_bpb=last["train_bpb"],
        tokens=last["tokens"],
        steps=last["step"],
        wall_s=time.perf_counter() - wall_start,
        cpu_s=time.process_time() - cpu_start,
        diverged=last["val_bpb"] > math.log2(recipe.vocab_size),
        data_fingerprint=corpus.fingerprint,
        curve=tuple(curve),
    )


def check_compatible(config: ArchConfig, recipe: Recipe) -> None:
    """A candidate the recipe cannot score is a mismatch in the user's files, not a failure."""
    if config.task != recipe.task:
        raise InputError(
            f"the model's task is {config.task} but the evaluator measures {recipe.task}",
            key="task",
        )
    if config.vocab_size < recipe.vocab_size:
        raise InputError(
            f"the {recipe.tokenizer} tokenizer needs vocab_size >= {recipe.vocab_size}, "
            f"got {config.vocab_size}",
            key="vocab_size",
        )
    if config.max_seq_len < recipe.seq_len:
        raise InputError(
            f"the evaluator trains on sequences of {recipe.seq_len} tokens, "
            f"longer than max_seq_len={config.max_seq_len}",
            key="max_seq_len",
        )


def validation_bpb(model: nn.Module, valid: torch.Tensor, recipe: Recipe) -> float:
    """Mean validation loss in bits per byte over the recipe's fixed validation batches."""
    was_training = model.training
    model.eval()
    streams = _streams(valid, recipe.batch_size)
    total, state = 0.0, None
    try:
        with torch.no_grad():
            for index in range(recipe.eval_batches):
                inputs, targets, fresh = _segment(streams, index, recipe.seq_len)
                loss, _, state = _task_loss(recipe.task)(
                    model, inputs, targets, None if fresh else state
                )
                total += loss.item()
    finally:
        model.train(was_training)
    bpb = total / recipe.eval_batches / LN2  # equal-sized batches: the mean of means
    if not math.isfinite(bpb):
        raise CandidateFailed(f"validation loss is {bpb}")
    return bpb


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to ``final_lr_ratio * lr`` at the last step."""
    peak, steps = recipe.optimizer.lr, recipe.steps
    warmup = round(recipe.schedule.warmup_fraction * steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - 1 - warmup)
    floor = recipe.schedule.final_lr_ratio * peak
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(model: nn.Module, recipe: Recipe, *, report: Report | None = None) -> list[dict[str, Any]]:
    """Train a built model for the recipe's budget; returns the validation points it reported.

    ``evaluate`` is this plus seeding, building and timing; ``fit`` takes any module that keeps
    the model contract (``model(tokens, state=...) -> ModelOutput``).
    """
    corpus = load_corpus(recipe.data)
    train, valid = corpus.train, corpus.valid
    optimizer = _optimizer(model, recipe)
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss_fn = _task_loss(recipe.task)
    streams = _streams(train, recipe.batch_size)
    eval_at = {k * recipe.steps // recipe.eval_points for k in range(1, recipe.eval_points + 1)}
    curve: list[dict[str, Any]] = []
    state, since_eval, loss_sum = None, 0, 0.0
    model.train()
    for step in range(recipe.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        inputs, targets, fresh = _segment(streams, step, recipe.seq_len)
        loss, aux, state = loss_fn(model, inputs, targets, None if fresh else state)
        state = _detach(state)  # memory is context, not a path for gradients into old segments
        total = loss + aux
        if not torch.isfinite(total):
            raise CandidateFailed(f"training loss became {total.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
        if not torch.isfinite(norm):
            raise CandidateFailed(f"gradient norm became {norm.item()} at step {step + 1}")
        optimizer.step()
        loss_sum += loss.item()
        since_eval += 1
        if step + 1 in eval_at:
            point = {
                "step": step + 1,
                "tokens": (step + 1) * recipe.tokens_per_step,
                "val_bpb": validation_bpb(model, valid, recipe),
                "train_bpb": loss_sum / since_eval / LN2,
            }
            curve.append(point)
            if report is not None:
                report(dict(point))
            since_eval, loss_sum = 0, 0.0
    return curve


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only, as biases and norm gains should not shrink."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    settings = recipe.optimizer
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas)


LossFn = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, torch.Tensor, Any]
]


def _task_loss(task: str) -> LossFn:
    """The one place that knows how a task's batch becomes a loss (seq2seq joins here)."""
    return {"causal_lm": _causal_lm_loss}[task]


def _causal_lm_loss(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, state: Any
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Next-token cross-entropy in nats per token, the model's auxiliary loss, its new state."""
    output = model(inputs, state=state)
    logits = output.logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))
    return loss, output.aux_loss, output.state


def _streams(data: torch.Tensor, rows: int) -> torch.Tensor:
    """``data`` cut into ``rows`` equal contiguous streams, one per batch row: [rows, length]."""
    length = data.numel() // rows
    return data[: rows * length].view(rows, length)


def _segment(streams: torch.Tensor, index: int, seq_len: int) -> tuple[Any, Any, bool]:
    """Inputs and next-byte targets of segment ``index``; wraps around at the end of the data.

    ``fresh`` is True where a segment does not continue the previous one (the first, and the
    first after a wrap), so recurrent state must start empty there.
    """
    per_stream = (streams.shape[1] - 1) // seq_len
    if per_stream < 1:
        raise ValueError(f"data too short for segments of {seq_len} tokens")
    start = (index % per_stream) * seq_len
    window = streams[:, start : start + seq_len + 1].long()
    return window[:, :-1], window[:, 1:], index % per_stream == 0


def _detach(state: Any) -> Any:
    """Detach every tensor inside a model's state, whatever container it comes in."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, dict):
        return {key: _detach(value) for key, value in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # namedtuple
        return type(state)(*(_detach(value) for value in state))
    if isinstance(state, (list, tuple)):
        return type(state)(_detach(value) for value in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        changes = {
            f.name: _detach(getattr(state, f.name)) for f in dataclasses.fields(state) if f.init
        }
        return dataclasses.replace(state, **changes)
    return state
