"""Brief training: the evaluator that scores a candidate by validation bits per byte.

The training text is laid out as ``batch_size`` parallel contiguous streams, so row b of step
i+1 continues row b of step i and a model with recurrent memory (Transformer-XL, compressive)
carries its state from one segment to the next, as it would in real use. Validation reads fixed
streams of the held-out files the same way, so every candidate sees the same validation bytes.
Synthetic tasks (synthetic.py) score only their answer positions: there ``val_bpb`` is bits per
answer token and ``val_accuracy`` the fraction of answers predicted exactly.

With ``tokenizer: bpe`` the model predicts BPE tokens but scores stay in bits per BYTE, so they
compare with byte-level results: the nats summed over the scored target tokens, divided by the
bytes those tokens decode to, over ln 2. For bytes this is the same number as before BPE existed
(tokens per byte is exactly 1).

``fit`` can stop at any step and start again from a ``TrainState`` (checkpoint.py saves one), and
a resumed run takes exactly the steps an uninterrupted one would.

A recipe's ``selection`` (selection.py) trains each step on the sequences it picks from a larger
pool; without it, the loop below is exactly what it was before selection existed.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.checks import check_count
from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate import CandidateFailed
from archsearch.evaluate.curriculum import cumulative_tokens, with_curriculum
from archsearch.evaluate.data import (
    IGNORE,
    Batch,
    Batches,
    StreamBatches,
    make_batches,
    target_bytes,
    token_byte_lengths,
)
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.retrieval import Datastore, datastore_for, training_windows
from archsearch.evaluate.selection import Selector, scoring_macs, take_rows
from archsearch.families.retrieval import retrieves
from archsearch.seeding import seeded

LN2 = math.log(2.0)
Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation measured.

    ``diverged`` is True when training finished with finite losses but the model ended worse
    than a uniform guess over the vocabulary (NaN or inf raise ``CandidateFailed`` instead).
    ``curve`` holds every intermediate report, in order. ``val_accuracy`` is set for tasks
    scored on answer positions only (synthetic tasks). With a recipe's ``selection``,
    ``selection_tokens`` and ``selection_macs`` are what scoring the candidate pools cost beyond
    training (forward passes only), and ``selection_s`` the wall time choosing took.
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
    val_accuracy: float | None = None
    selection_tokens: int = 0
    selection_macs: int = 0
    selection_s: float = 0.0

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
    check_count("threads", threads)
    # AdamW imports torch._dynamo when first built (seconds of CPU): do it before the clocks
    # start, so the first candidate of a worker is not charged for a one-time import.
    importlib.import_module("torch._dynamo")

    wall_start, cpu_start = time.perf_counter(), time.process_time()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batches = make_batches(recipe)
        selector = Selector(recipe, batches) if recipe.selection is not None else None
        from archsearch.models import build_model

        # The run's own stream: the weights draw first (build_model(config, seed=recipe.seed)'s
        # weights), then dropout and random features; the caller's stream is left as it was.
        with seeded(recipe.seed):
            model = build_model(config)
            curve = fit(model, recipe, report=report, batches=batches, selector=selector)
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
        diverged=last["val_bpb"] > uniform_bpb(batches, recipe),
        data_fingerprint=batches.fingerprint,
        curve=tuple(curve),
        val_accuracy=last.get("val_accuracy"),
        **_selection_costs(config, recipe, selector, last["step"]),
    )


def _selection_costs(
    config: ArchConfig, recipe: Recipe, selector: Selector | None, steps: int
) -> dict[str, Any]:
    if selector is None:
        return {}
    return {
        "selection_tokens": selector.scored_tokens,
        "selection_macs": scoring_macs(config, recipe, steps),
        "selection_s": selector.seconds,
    }


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
    if retrieves(config) and recipe.data_scheme == "synthetic":
        raise InputError(
            "retrieval needs text data to build its datastore from, not a synthetic task",
            key="retrieval_chunk",
        )
    if retrieves(config) and recipe.selection is not None:
        raise InputError(
            "retrieval skips the text a training row comes from, which rows picked from a "
            "selection pool do not say; drop selection for retrieving models",
            key="selection",
        )
    if config.max_seq_len < recipe.seq_len:
        raise InputError(
            f"the evaluator trains on sequences of {recipe.seq_len} tokens, "
            f"longer than max_seq_len={config.max_seq_len}",
            key="max_seq_len",
        )


def validation_bpb(model: nn.Module, valid: torch.Tensor, recipe: Recipe) -> float:
    """Mean validation loss in bits per byte of a byte tensor, read as the recipe's streams."""
    if recipe.tokenizer != "bytes":
        raise InputError("validation_bpb reads raw bytes; use validate()", key="tokenizer")
    streams = StreamBatches(valid, valid, rows=recipe.batch_size, seq_len=recipe.seq_len)
    return validate(model, streams, recipe)["val_bpb"]


def validate(
    model: nn.Module, batches: Batches, recipe: Recipe, store: Datastore | None = None
) -> dict[str, float]:
    """Validation loss in bits per byte (per answer token for answer-only tasks, with their
    accuracy). A retrieving model reads its neighbours from ``store`` (the training split's).

    Text batches are all the same size, so the mean of the batch means is the loss per token,
    and tokens per byte of the scored targets turns it into the loss per byte (exactly 1 for
    bytes); answer-only tasks weigh every answer equally.
    """
    was_training = model.training
    model.eval()
    forward = retrieving_forward(model, store) or task_forward(recipe.task)
    total, answers, correct, state = 0.0, 0, 0, None
    try:
        with torch.no_grad():
            for index in range(recipe.eval_batches):
                batch = batches.valid(index)
                output = forward(model, batch, None if batch.fresh else state)
                state = output.state
                scored = batch.targets != IGNORE
                loss = _loss(output.logits, batch.targets)
                count = int(scored.sum())
                total += loss.item() * (count if batches.answers_only else 1)
                answers += count
                if batches.answers_only:
                    guesses = output.logits.argmax(-1)
                    correct += int((guesses == batch.targets)[scored].sum())
    finally:
        model.train(was_training)
    denominator = answers if batches.answers_only else recipe.eval_batches
    bpb = total / denominator * _valid_tokens_per_byte(batches, recipe) / LN2
    if not math.isfinite(bpb):
        raise CandidateFailed(f"validation loss is {bpb}")
    if batches.answers_only:
        return {"val_bpb": bpb, "val_accuracy": correct / answers}
    return {"val_bpb": bpb}


def tokens_per_byte(targets: Iterable[torch.Tensor], lengths: torch.Tensor | None) -> float:
    """Scored target tokens over the bytes they decode to (1.0 when each token is a byte)."""
    if lengths is None:
        return 1.0
    tokens = scored_bytes = 0
    for target in targets:
        tokens += int((target != IGNORE).sum())
        scored_bytes += target_bytes(target, lengths)
    return tokens / scored_bytes


def uniform_bpb(batches: Batches, recipe: Recipe) -> float:
    """What a uniform guess over the recipe's vocabulary scores on the validation targets:
    log2(vocab_size) bits per token, in bits per byte (8 for bytes)."""
    assert recipe.vocab_size is not None  # filled in for every tokenizer
    return math.log2(recipe.vocab_size) * _valid_tokens_per_byte(batches, recipe)


def _valid_tokens_per_byte(batches: Batches, recipe: Recipe) -> float:
    """``tokens_per_byte`` of the validation targets, the same at every validation point."""
    targets = (batches.valid(index).targets for index in range(recipe.eval_batches))
    return tokens_per_byte(targets, token_byte_lengths(recipe))


def learning_rate(recipe: Recipe, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to ``final_lr_ratio * lr`` at the last step."""
    peak, steps = recipe.optimizer.lr, recipe.steps
    warmup = round(recipe.schedule.warmup_fraction * steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - 1 - warmup)
    floor = recipe.schedule.final_lr_ratio * peak
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class TrainState:
    """Everything besides the weights that the next step depends on (what a checkpoint adds).

    ``optimizer`` is the optimizer's ``state_dict()``; ``memory`` the recurrent state carried
    into the next segment; ``rng`` the global torch generator (dropout and random features draw
    from it). Built by ``fit`` for its ``checkpoint`` callback: tensors in it are live, so save
    them during the call.
    """

    step: int = 0
    optimizer: dict[str, Any] | None = None
    memory: Any = None
    loss_sum: float = 0.0
    since_eval: int = 0
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    rng: torch.Tensor | None = None
    # with selection: the pool rows trained on at each step since the last validation point
    chosen: list[list[int]] = dataclasses.field(default_factory=list)


def fit(
    model: nn.Module,
    recipe: Recipe,
    *,
    report: Report | None = None,
    batches: Batches | None = None,
    resume: TrainState | None = None,
    stop_at: int | None = None,
    checkpoint: Callable[[TrainState], None] | None = None,
    selector: Selector | None = None,
) -> list[dict[str, Any]]:
    """Train a built model for the recipe's budget; returns the validation points it reported.

    ``evaluate`` is this plus seeding, building and timing; ``fit`` takes any module that keeps
    the model contract (``model(tokens, state=...) -> ModelOutput``). ``resume`` continues from
    a saved state (the model must already hold its weights); ``stop_at`` ends after that many
    steps in all; ``checkpoint`` receives the state at each validation point and where training
    stops. A recipe's ``curriculum`` shortens the early training segments (curriculum.py); the
    reported ``tokens`` are those actually trained on. A recipe's ``selection`` picks each
    step's batch from a pool (``selector``, made from ``batches`` when not given).
    """
    source = make_batches(recipe) if batches is None else batches
    if selector is None and recipe.selection is not None:
        selector = Selector(recipe, source)
    batches = with_curriculum(source, recipe)
    store = datastore_for_model(model, source)
    trained = cumulative_tokens(recipe)  # tokens after each step (fewer with a curriculum)
    optimizer = _optimizer(model, recipe)
    parameters = [p for p in model.parameters() if p.requires_grad]
    forward = retrieving_forward(model, store, source) or task_forward(recipe.task)
    eval_at = {k * recipe.steps // recipe.eval_points for k in range(1, recipe.eval_points + 1)}
    run = (
        TrainState()
        if resume is None
        else dataclasses.replace(resume, curve=list(resume.curve), chosen=list(resume.chosen))
    )
    if resume is not None:
        if resume.optimizer is not None:
            optimizer.load_state_dict(resume.optimizer)
        if resume.rng is not None:
            torch.set_rng_state(resume.rng)
    end = recipe.steps if stop_at is None else min(stop_at, recipe.steps)

    lengths = token_byte_lengths(recipe)

    def window_ratio() -> float:
        """Tokens per byte of the steps since the last validation point (re-read, so a
        resumed run needs nothing more in its checkpoint than, with selection, the rows
        chosen)."""
        steps = range(run.step - run.since_eval, run.step)
        if selector is not None:  # the rows trained on, out of each step's pool
            pools = (
                take_rows(selector.pool(i), rows).targets
                for i, rows in zip(steps, run.chosen, strict=True)
            )
            return tokens_per_byte(pools, lengths)
        return tokens_per_byte((batches.train(i).targets for i in steps), lengths)

    def snapshot() -> TrainState:
        return dataclasses.replace(
            run, optimizer=optimizer.state_dict(), rng=torch.get_rng_state(), curve=run.curve
        )

    model.train()
    for step in range(run.step, end):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, step)
        if selector is None:
            batch = batches.train(step)
        else:
            batch, rows = selector.choose(model, step, forward)
            run.chosen.append(rows)
        output = forward(model, batch, None if batch.fresh else run.memory)
        loss = _loss(output.logits, batch.targets)
        # memory is context, not a path for gradients into old segments
        run.memory = _detach(output.state)
        total = loss + output.aux_loss
        if not torch.isfinite(total):
            raise CandidateFailed(f"training loss became {total.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(parameters, recipe.grad_clip)
        if not torch.isfinite(norm):
            raise CandidateFailed(f"gradient norm became {norm.item()} at step {step + 1}")
        optimizer.step()
        run.loss_sum += loss.item()
        run.since_eval += 1
        run.step = step + 1
        if step + 1 in eval_at:
            point = {
                "step": step + 1,
                "tokens": trained[step],
                **_renamed(validate(model, batches, recipe, store)),
                "train_bpb": run.loss_sum / run.since_eval * window_ratio() / LN2,
            }
            run.curve.append(point)
            if report is not None:
                report(dict(point))
            run.since_eval, run.loss_sum = 0, 0.0
            run.chosen = []
            if checkpoint is not None:
                checkpoint(snapshot())
        elif step + 1 == end and checkpoint is not None:
            checkpoint(snapshot())
    return list(run.curve)


def _renamed(metrics: dict[str, float]) -> dict[str, float]:
    """Validation metrics in report order: val_bpb first, then any others."""
    return {"val_bpb": metrics["val_bpb"], **metrics}


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


Forward = Callable[[nn.Module, Batch, Any], Any]


def task_forward(task: str) -> Forward:
    """The one place that knows how a task's batch enters the model."""
    return {"causal_lm": _causal_lm_forward, "seq2seq": _seq2seq_forward}[task]


def _causal_lm_forward(model: nn.Module, batch: Batch, state: Any) -> Any:
    return model(batch.inputs, state=state)


def datastore_for_model(model: nn.Module, batches: Batches) -> Datastore | None:
    """The training split's datastore when ``model`` retrieves (None otherwise)."""
    arch = getattr(model, "arch", None)
    if arch is None or not retrieves(arch):
        return None
    return datastore_for(batches, arch.retrieval_chunk, arch.vocab_size)


def retrieving_forward(
    model: nn.Module, store: Datastore | None, training: Batches | None = None
) -> Forward | None:
    """A forward that looks up each batch's neighbours in ``store`` (None when the model does
    not retrieve). With ``training`` (the source the batches are cut from), neighbours that
    overlap the row being trained on are skipped."""
    arch = getattr(model, "arch", None)
    if arch is None or not retrieves(arch):
        return None
    if store is None:
        raise ValueError("a retrieving model needs the training split's datastore")
    k = arch.retrieval_k

    def forward(model: nn.Module, batch: Batch, state: Any) -> Any:
        windows = None
        if training is not None:
            if batch.start is None:
                raise ValueError("training batches for retrieval must say where they start")
            rows, length = batch.inputs.shape
            windows = training_windows(training, batch.start, rows, length)
        neighbours = store.neighbours(batch.inputs, k, windows)
        return model(batch.inputs, state=state, neighbours=neighbours)

    return forward


def _seq2seq_forward(model: nn.Module, batch: Batch, state: Any) -> Any:
    """Teacher-forced decoder over ``inputs`` attending to the encoded ``source``."""
    return model(batch.inputs, batch.source)


def _loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats per scored token (positions with target ``IGNORE`` left out)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE
    )


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
