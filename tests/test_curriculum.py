"""Sequence-length warm-up: the lengths, the batches, the token count and real training runs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from archsearch import ArchConfig, build_model
from archsearch.errors import InputError
from archsearch.evaluate import evaluate, load_recipe
from archsearch.evaluate.checkpoint import train_resumable
from archsearch.evaluate.curriculum import (
    MULTIPLE,
    CurriculumBatches,
    cumulative_tokens,
    seq_lens,
    with_curriculum,
)
from archsearch.evaluate.data import StreamBatches, make_batches
from archsearch.evaluate.recipe import Curriculum, Recipe
from archsearch.evaluate.train import fit

SEQ_LEN, BATCH, STEPS = 64, 4, 30


def _recipe(curriculum: Curriculum | None = None, **changes: Any) -> Recipe:
    """lm_brief's data, optimizer and schedule, shrunk to a second of training."""
    per_step = SEQ_LEN * BATCH
    values = {
        "seq_len": SEQ_LEN,
        "batch_size": BATCH,
        "token_budget": STEPS * per_step,
        "eval_tokens": 2 * per_step,
        "eval_points": 3,
        "curriculum": curriculum,
        **changes,
    }
    return load_recipe("lm_brief").replace(**values)


def _config(**changes: Any) -> ArchConfig:
    base = {"d_model": 32, "n_layers": 1, "heads": 2, "ffn_ratio": 2.0, "max_seq_len": SEQ_LEN}
    return ArchConfig.from_dict({**base, **changes})


@pytest.mark.parametrize(
    ("start", "fraction", "steps"), [(16, 0.5, 30), (12, 0.3, 40), (8, 1.0, 9), (64, 0.5, 10)]
)
def test_lengths_grow_linearly_to_seq_len_at_the_fraction(
    start: int, fraction: float, steps: int
) -> None:
    recipe = _recipe(Curriculum(start, fraction), token_budget=steps * SEQ_LEN * BATCH)
    lengths = seq_lens(recipe)
    ramp = max(1, round(fraction * steps))
    assert len(lengths) == recipe.steps == steps
    assert lengths[0] == start
    assert lengths == sorted(lengths)  # never shrinks
    assert all(start <= n <= SEQ_LEN for n in lengths)
    assert all(n == SEQ_LEN for n in lengths[ramp:])  # full length from the fraction on
    for step, n in enumerate(lengths[:ramp]):
        linear = start + (SEQ_LEN - start) * step / ramp
        assert n % MULTIPLE == 0 or n == start
        assert n <= max(start, linear) and n > linear - MULTIPLE  # rounded down, to 8
    if start < SEQ_LEN - MULTIPLE and ramp > 1:
        assert lengths[ramp - 1] < SEQ_LEN  # still ramping just before the fraction


def test_without_curriculum_every_step_is_full_length() -> None:
    recipe = _recipe()
    assert seq_lens(recipe) == [SEQ_LEN] * recipe.steps
    assert cumulative_tokens(recipe)[-1] == recipe.token_budget
    batches = make_batches(recipe)
    assert with_curriculum(batches, recipe) is batches


def _streams(columns: int) -> StreamBatches:
    data = torch.arange(BATCH * columns, dtype=torch.int64) % 251
    return StreamBatches(data.to(torch.uint8), data.to(torch.uint8), rows=BATCH, seq_len=SEQ_LEN)


def test_constant_lengths_read_exactly_the_stream_segments() -> None:
    """With every length seq_len the curriculum reader equals StreamBatches, wraps included."""
    plain = _streams(columns=5 * SEQ_LEN + 7)  # wraps after 5 segments
    curriculum = CurriculumBatches(plain, [SEQ_LEN] * 13)
    for step in range(13):
        ours, theirs = curriculum.train(step), plain.train(step)
        assert ours.inputs.equal(theirs.inputs) and ours.targets.equal(theirs.targets)
        assert ours.fresh == theirs.fresh


def test_growing_segments_are_contiguous_and_fresh_only_at_wraps() -> None:
    plain = _streams(columns=4 * SEQ_LEN + 1)
    recipe = _recipe(Curriculum(8, 0.6))
    batches = with_curriculum(plain, recipe)
    lengths = seq_lens(recipe)
    previous = None
    position = 0
    for step, length in enumerate(lengths):
        batch = batches.train(step)
        assert batch.inputs.shape == (BATCH, length) == batch.targets.shape
        assert batch.targets[:, :-1].equal(batch.inputs[:, 1:])
        wraps = position + length + 1 > plain.train_streams.shape[1]
        position = 0 if wraps else position
        assert batch.fresh == (step == 0 or wraps)
        expected = plain.train_streams[:, position : position + length]
        assert batch.inputs.equal(expected.long())
        if previous is not None and not batch.fresh:  # continues where the last one ended
            assert batch.inputs[:, 0].equal(previous.targets[:, -1])
        previous, position = batch, position + length
    assert any(batches.train(s).fresh for s in range(1, len(lengths)))  # a wrap was exercised
    assert batches.valid(0).inputs.equal(plain.valid(0).inputs)  # validation at full length


class _CountTokens(nn.Module):
    """The model, counting the tokens of every training forward pass."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.trained = model, 0

    def forward(self, tokens: torch.Tensor, state: Any = None) -> Any:
        if self.training:
            self.trained += tokens.numel()
        return self.model(tokens, state=state)


def test_reported_tokens_are_the_tokens_trained_on() -> None:
    recipe = _recipe(Curriculum(16, 0.5))
    torch.manual_seed(0)
    model = _CountTokens(build_model(_config()))
    curve = fit(model, recipe)
    assert curve[-1]["tokens"] == model.trained == cumulative_tokens(recipe)[-1]
    assert model.trained == BATCH * sum(seq_lens(recipe)) < recipe.token_budget
    steps = [point["step"] for point in curve]
    assert [point["tokens"] for point in curve] == [cumulative_tokens(recipe)[s - 1] for s in steps]


@pytest.mark.parametrize("memory", [{}, {"memory": "xl", "mem_len": 32}])
def test_evaluate_with_a_curriculum_trains_on_fewer_tokens(memory: dict[str, Any]) -> None:
    config = _config(**memory)
    plain = evaluate(config, _recipe())
    warmed = evaluate(config, _recipe(Curriculum(16, 0.5)))
    for result in (plain, warmed):
        assert math.isfinite(result.val_bpb) and result.val_bpb < math.log2(256)
    assert warmed.steps == plain.steps
    assert warmed.tokens < plain.tokens == _recipe().token_budget
    assert warmed.data_fingerprint == plain.data_fingerprint


def test_a_resumed_curriculum_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    recipe, config = _recipe(Curriculum(16, 0.5), eval_points=2), _config(memory="xl", mem_len=16)
    whole = train_resumable(config, recipe, tmp_path / "whole")
    train_resumable(config, recipe, tmp_path / "parts", stop_at=7)  # mid-ramp
    resumed = train_resumable(config, recipe, tmp_path / "parts", resume=True)
    assert resumed.curve == whole.curve


def test_synthetic_data_refuses_a_curriculum() -> None:
    with pytest.raises(InputError) as caught:
        load_recipe("mqar").replace(curriculum=Curriculum(8, 0.5))
    assert caught.value.key == "curriculum"
    # Batches without text streams given to a text recipe with a curriculum: refused too.
    text = load_recipe("lm_brief").replace(seq_len=64, curriculum=Curriculum(8, 0.5))
    with pytest.raises(InputError) as caught:
        with_curriculum(make_batches(load_recipe("mqar")), text)
    assert caught.value.key == "curriculum"


def test_lm_efficient_is_lm_brief_plus_dedup_and_a_curriculum() -> None:
    efficient, brief = load_recipe("lm_efficient"), load_recipe("lm_brief")
    assert efficient.dedup == "near" and efficient.curriculum is not None
    same = efficient.replace(
        name=brief.name, description=brief.description, dedup="none", curriculum=None
    )
    assert same == brief  # every other setting follows lm_brief
    assert seq_lens(efficient)[0] == efficient.curriculum.start_seq_len
    assert cumulative_tokens(efficient)[-1] < efficient.token_budget
