"""Brief training: it learns, it is deterministic, it reports, it fails loudly on NaN."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

import archsearch
from archsearch import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate import CandidateFailed, evaluate, load_corpus, load_recipe
from archsearch.evaluate.checkpoint import train_resumable
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import fit, learning_rate, validation_bpb
from archsearch.models.output import ModelOutput

SEQ_LEN, BATCH = 32, 4


def _tiny_config(**changes: Any) -> ArchConfig:
    base = {"d_model": 32, "n_layers": 1, "heads": 2, "ffn_ratio": 2.0, "max_seq_len": 64}
    return ArchConfig.from_dict({**base, **changes})


def _tiny_recipe(steps: int = 24, eval_points: int = 3, **changes: Any) -> Recipe:
    """The built-in recipe, shrunk to seconds: same data, optimizer and schedule shapes."""
    per_step = SEQ_LEN * BATCH
    return load_recipe("lm_brief").replace(
        seq_len=SEQ_LEN,
        batch_size=BATCH,
        token_budget=steps * per_step,
        eval_tokens=4 * per_step,
        eval_points=eval_points,
        **changes,
    )


def _untrained_bpb(config: ArchConfig, recipe: Recipe) -> float:
    model = archsearch.build_model(config, seed=recipe.seed)  # what evaluate() starts from
    return validation_bpb(model, load_corpus(recipe.data).valid, recipe)


def test_training_beats_uniform_and_the_untrained_model() -> None:
    config, recipe = _tiny_config(), _tiny_recipe()
    reports: list[dict[str, Any]] = []
    result = evaluate(config, recipe, report=reports.append)
    uniform = math.log2(recipe.vocab_size)
    assert result.val_bpb < uniform
    assert result.val_bpb < _untrained_bpb(config, recipe) - 0.5
    assert result.train_bpb < uniform
    assert not result.diverged
    assert result.tokens == recipe.token_budget and result.steps == recipe.steps
    assert result.data_fingerprint == load_corpus(recipe.data).fingerprint
    assert result.wall_s > 0 and result.cpu_s > 0
    # The report callback fires once per eval point, tokens growing to the whole budget.
    assert len(reports) == recipe.eval_points
    tokens = [point["tokens"] for point in reports]
    assert tokens == sorted(set(tokens)) and tokens[-1] == recipe.token_budget
    assert [p["step"] * recipe.tokens_per_step for p in reports] == tokens
    assert list(result.curve) == reports
    assert result.val_bpb == reports[-1]["val_bpb"]
    assert set(reports[0]) == {"step", "tokens", "val_bpb", "train_bpb"}


def test_report_points_need_not_divide_the_steps() -> None:
    reports: list[dict[str, Any]] = []
    recipe = _tiny_recipe(steps=10, eval_points=3)
    evaluate(_tiny_config(), recipe, report=reports.append)
    assert [point["step"] for point in reports] == [3, 6, 10]


def test_same_seed_same_result_other_seed_other_result() -> None:
    config, recipe = _tiny_config(), _tiny_recipe(steps=8, eval_points=1)
    threads_before = torch.get_num_threads()
    first = evaluate(config, recipe)
    second = evaluate(config, recipe)
    assert torch.get_num_threads() == threads_before  # the caller's setting is restored
    assert first.val_bpb == second.val_bpb and first.curve == second.curve
    assert evaluate(config, recipe.replace(seed=recipe.seed + 1)).val_bpb != first.val_bpb


def test_training_starts_from_the_seeded_build(tmp_path) -> None:
    """``evaluate`` and the resumable loop (``train``, ``confirm``) both start from
    ``build_model(config, seed=recipe.seed)``: for a model that draws nothing while it trains
    (full attention, dense, no dropout), fitting that build gives their curve exactly, and the
    build of another seed does not."""
    config, recipe = _tiny_config(), _tiny_recipe(steps=4, eval_points=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as evaluate trains: the same sums in the same order
    try:
        expected = fit(archsearch.build_model(config, seed=recipe.seed), recipe)
        other = fit(archsearch.build_model(config, seed=recipe.seed + 1), recipe)
    finally:
        torch.set_num_threads(threads)
    assert list(evaluate(config, recipe).curve) == expected
    assert list(train_resumable(config, recipe, tmp_path / "run").curve) == expected
    assert other != expected


def test_evaluate_leaves_the_callers_random_stream_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate(_tiny_config(), _tiny_recipe(steps=2, eval_points=1))
    assert torch.equal(torch.rand(3), expected)


def test_all_zero_model_scores_exactly_the_uniform_bits() -> None:
    """Zero weights give zero logits, a uniform guess: log2(256) = 8 bits per byte."""
    recipe = _tiny_recipe()
    model = archsearch.build_model(_tiny_config())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    bpb = validation_bpb(model, load_corpus(recipe.data).valid, recipe)
    assert bpb == pytest.approx(math.log2(recipe.vocab_size), abs=1e-5)


def test_validation_carries_memory_across_consecutive_segments() -> None:
    """An independent reference: B contiguous streams of the validation bytes, state passed on."""
    config = _tiny_config(memory="xl", mem_len=16)
    recipe = _tiny_recipe()
    torch.manual_seed(0)
    model = archsearch.build_model(config).eval()
    valid = load_corpus(recipe.data).valid
    length = valid.numel() // BATCH
    streams = valid[: BATCH * length].view(BATCH, length).long()

    def reference(carry: bool) -> float:
        state, total = None, 0.0
        with torch.no_grad():
            for index in range(recipe.eval_batches):
                window = streams[:, index * SEQ_LEN : (index + 1) * SEQ_LEN + 1]
                output = model(window[:, :-1], state=state if carry else None)
                logits = output.logits.reshape(-1, output.logits.shape[-1])
                total += torch.nn.functional.cross_entropy(logits, window[:, 1:].reshape(-1))
                state = output.state
        return float(total) / recipe.eval_batches / math.log(2)

    measured = validation_bpb(model, valid, recipe)
    assert measured == pytest.approx(reference(carry=True), rel=1e-6)
    assert measured != pytest.approx(reference(carry=False), rel=1e-6)


def test_a_model_with_memory_trains() -> None:
    config, recipe = _tiny_config(memory="xl", mem_len=16), _tiny_recipe()
    result = evaluate(config, recipe)
    assert result.val_bpb < _untrained_bpb(config, recipe) - 0.5


class StateRecorder(nn.Module):
    """A real model, plus a note of the state it is handed on each call (train or eval)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls: list[tuple[bool, Any]] = []

    def forward(self, tokens: torch.Tensor, state: Any = None) -> ModelOutput:
        self.calls.append((self.training, state))
        return self.model(tokens, state=state)


def test_training_carries_detached_memory_from_segment_to_segment() -> None:
    recipe = _tiny_recipe(steps=6, eval_points=1)
    torch.manual_seed(0)
    recorder = StateRecorder(archsearch.build_model(_tiny_config(memory="xl", mem_len=16)))
    fit(recorder, recipe)
    training = [state for is_training, state in recorder.calls if is_training]
    validation = [state for is_training, state in recorder.calls if not is_training]
    assert len(training) == recipe.steps and len(validation) == recipe.eval_batches
    for states in (training, validation):
        assert states[0] is None
        assert all(state is not None for state in states[1:])
    for state in training[1:]:
        assert all(not tensor.requires_grad for tensor in state)


def test_training_segments_continue_each_row_of_the_stream() -> None:
    recipe = _tiny_recipe(steps=5, eval_points=1)
    batches: list[torch.Tensor] = []

    class InputRecorder(StateRecorder):
        def forward(self, tokens: torch.Tensor, state: Any = None) -> ModelOutput:
            if self.training:
                batches.append(tokens.clone())
            return self.model(tokens, state=state)

    torch.manual_seed(0)
    fit(InputRecorder(archsearch.build_model(_tiny_config())), recipe)
    rows = torch.cat(batches, dim=1)  # [batch, steps * seq_len]: each row should be one stream
    train = load_corpus(recipe.data).train.numpy().tobytes()
    starts = [train.find(bytes(row.tolist())) for row in rows]
    assert all(start >= 0 for start in starts)  # each row is one contiguous run of the data
    assert len(set(starts)) == len(starts)


class WithPenalty(nn.Module):
    """A real model whose auxiliary loss is ``weight`` x the squared norm of its parameters."""

    def __init__(self, model: nn.Module, weight: float):
        super().__init__()
        self.model, self.weight = model, weight

    def forward(self, tokens: torch.Tensor, state: Any = None) -> ModelOutput:
        output = self.model(tokens, state=state)
        penalty = sum(p.pow(2).sum() for p in self.model.parameters())
        return ModelOutput(output.logits, output.aux_loss + self.weight * penalty, output.state)


def test_the_auxiliary_loss_is_trained_on() -> None:
    recipe = _tiny_recipe(steps=12, eval_points=1)
    recipe = recipe.replace(optimizer=dataclasses.replace(recipe.optimizer, lr=0.05))
    norms = {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        model = WithPenalty(archsearch.build_model(_tiny_config()), weight)
        fit(model, recipe)
        with torch.no_grad():
            norms[weight] = float(sum(p.pow(2).sum() for p in model.parameters()))
    assert norms[10.0] < 0.5 * norms[0.0]


def test_nan_loss_raises_candidate_failed_with_a_reason() -> None:
    recipe = _tiny_recipe(steps=6, eval_points=1)
    explosive = recipe.replace(
        optimizer=dataclasses.replace(recipe.optimizer, lr=1e30),
        schedule=dataclasses.replace(recipe.schedule, warmup_fraction=0.0),
    )
    reports: list[dict[str, Any]] = []
    with pytest.raises(CandidateFailed) as info:
        evaluate(_tiny_config(), explosive, report=reports.append)
    assert "at step" in info.value.reason
    assert reports == []  # nothing half-measured was reported


def test_learning_rate_warms_up_then_decays_to_the_final_ratio() -> None:
    recipe = _tiny_recipe(steps=40)
    peak, warmup = recipe.optimizer.lr, round(recipe.schedule.warmup_fraction * recipe.steps)
    rates = [learning_rate(recipe, step) for step in range(recipe.steps)]
    assert warmup > 1
    assert rates[:warmup] == sorted(rates[:warmup]) and rates[warmup - 1] == pytest.approx(peak)
    assert rates[warmup:] == sorted(rates[warmup:], reverse=True)
    assert rates[warmup] == pytest.approx(peak)
    assert rates[-1] == pytest.approx(recipe.schedule.final_lr_ratio * peak)
    assert all(r > 0 for r in rates)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"vocab_size": 128}, "vocab_size"),
        ({"max_seq_len": SEQ_LEN // 2}, "max_seq_len"),
        ({"task": "seq2seq", "n_encoder_layers": 1}, "task"),
    ],
)
def test_a_config_the_recipe_cannot_score_is_an_input_error(
    changes: dict[str, Any], key: str
) -> None:
    with pytest.raises(InputError) as info:
        evaluate(_tiny_config(**changes), _tiny_recipe())
    assert info.value.key == key
