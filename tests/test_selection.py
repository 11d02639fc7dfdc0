"""Active data selection (a recipe's ``selection``): each step trains on the pool's
highest-loss sequences, costs what its forward passes cost, resumes exactly, and leaves
training without it untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archsearch import ArchConfig, build_model
from archsearch.costs.reference import counting_mode
from archsearch.errors import InputError
from archsearch.evaluate import selection as selection_module
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.selection import Selector, scoring_macs
from archsearch.evaluate.train import TrainState, evaluate, fit, task_forward
from tests.conftest import TINY_RECIPE

CONFIG = ArchConfig.from_dict(
    {"n_layers": 2, "d_model": 32, "heads": 2, "max_seq_len": 32, "dropout": 0.1}
)


def _recipe(**selection: object) -> Recipe:
    extra = {"selection": selection} if selection else {}
    return Recipe.from_dict({**TINY_RECIPE, **extra})


def test_the_chosen_sequences_are_the_pools_highest_loss_ones() -> None:
    """Reference: every candidate scored on its own (a batch of one row, eval mode), ranked."""
    recipe = _recipe(pool=3, by="loss")
    selector = Selector(recipe, make_batches(recipe))
    torch.manual_seed(0)
    model = build_model(CONFIG).train()
    for step in (0, 5):
        candidates = selector.pool(step)
        inputs = torch.cat([b.inputs for b in candidates])
        targets = torch.cat([b.targets for b in candidates])
        assert inputs.shape == (3 * recipe.batch_size, recipe.seq_len)
        model.eval()
        with torch.no_grad():
            alone = [
                F.cross_entropy(model(inputs[i : i + 1]).logits[0], targets[i]).item()
                for i in range(inputs.shape[0])
            ]
        model.train()
        worst = sorted(range(len(alone)), key=lambda i: alone[i])[-recipe.batch_size :]
        before = torch.get_rng_state()
        batch, rows = selector.choose(model, step, task_forward(recipe.task))
        assert torch.equal(torch.get_rng_state(), before), "scoring drew random numbers"
        assert model.training, "the model is handed back in training mode"
        assert rows == sorted(worst)
        assert torch.equal(batch.inputs, inputs[rows]) and torch.equal(batch.targets, targets[rows])
        assert batch.fresh


def test_random_selection_is_seeded_and_reads_the_same_pool() -> None:
    recipe = _recipe(pool=4, by="random")
    selector = Selector(recipe, make_batches(recipe))
    model = build_model(CONFIG)
    forward = task_forward(recipe.task)
    first = [selector.choose(model, step, forward)[1] for step in range(4)]
    assert first == [selector.choose(model, step, forward)[1] for step in range(4)]
    assert len({tuple(rows) for rows in first}) > 1
    assert selector.scored_tokens == 0  # no forward pass: nothing to score


def test_scoring_macs_equal_the_flop_counter_over_the_pool() -> None:
    recipe = _recipe(pool=2, by="loss")
    selector = Selector(recipe, make_batches(recipe))
    torch.manual_seed(0)
    model = build_model(CONFIG)
    with counting_mode() as counter:
        selector.choose(model, 0, task_forward(recipe.task))
    assert counter.get_total_flops() // 2 == scoring_macs(CONFIG, recipe, 1)
    assert selector.scored_tokens == 2 * recipe.tokens_per_step


def test_evaluate_reports_the_cost_and_a_resumed_run_repeats_the_choices() -> None:
    recipe = _recipe(pool=2)
    result = evaluate(CONFIG, recipe)
    assert result.selection_tokens == 2 * recipe.token_budget
    assert result.selection_macs == scoring_macs(CONFIG, recipe, recipe.steps) > 0
    assert result.selection_s > 0

    def run(stop_at: int | None, resume: TrainState | None = None):
        torch.manual_seed(recipe.seed)
        model = build_model(CONFIG)
        states: list[tuple[TrainState, dict]] = []

        def keep(state: TrainState) -> None:
            copied = TrainState(**{**state.__dict__, "chosen": list(state.chosen)})
            states.append((copied, {k: v.clone() for k, v in model.state_dict().items()}))

        if resume is not None:
            model.load_state_dict(saved_weights)
        curve = fit(model, recipe, resume=resume, stop_at=stop_at, checkpoint=keep)
        return curve, states

    whole, _ = run(None)
    assert [p["val_bpb"] for p in whole] == [p["val_bpb"] for p in result.curve]
    _, states = run(3)  # stops mid-window: the rows chosen so far are in the state
    state, saved_weights = states[-1]
    assert state.step == 3 and len(state.chosen) == 3
    resumed, _ = run(None, resume=state)
    assert resumed == whole


def test_without_selection_no_selector_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training without the key never reaches the selection code (so it is the loop it was),
    and its recipe keeps the keys it had (journals, caches and studies keep their keys)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a selector was built for a recipe without selection")

    monkeypatch.setattr(selection_module.Selector, "__init__", refuse)
    recipe = _recipe()
    assert "selection" not in recipe.to_dict()
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    first = evaluate(CONFIG, recipe)
    assert first.selection_tokens == 0 and first.curve == evaluate(CONFIG, recipe).curve


@pytest.mark.parametrize(
    ("selection", "key", "words"),
    [
        ({"pool": 1}, "selection.pool", "nothing to choose"),
        ({"pool": 0}, "selection.pool", ">= 1"),
        ({"pool": 2.5}, "selection.pool", "integer"),
        ({"pool": 4, "by": "gradient"}, "selection.by", "loss, random"),
        ({"by": "loss"}, "selection.pool", "missing"),
        ({"pool": 4, "size": 2}, "selection.size", "unknown key"),
        (4, "selection", "mapping"),
    ],
)
def test_bad_selection_is_one_line_naming_the_key(selection: object, key: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TINY_RECIPE, "selection": selection})
    assert info.value.key == key
    assert words in info.value.message and "\n" not in str(info.value)


def test_selection_is_refused_where_nothing_trains() -> None:
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TINY_RECIPE, "proxy": "params", "selection": {"pool": 2}})
    assert info.value.key == "selection" and "proxy" in info.value.message
    supernet = {"token_budget": 512}
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TINY_RECIPE, "supernet": supernet, "selection": {"pool": 2}})
    assert info.value.key == "selection" and "supernet" in info.value.message


def test_a_curriculum_sets_the_length_of_every_candidate_of_a_step() -> None:
    recipe = Recipe.from_dict(
        {**TINY_RECIPE, "curriculum": {"start_seq_len": 16, "fraction": 0.5},
         "selection": {"pool": 3}}
    )  # fmt: skip
    selector = Selector(recipe, make_batches(recipe))
    from archsearch.evaluate.curriculum import seq_lens

    for step, length in enumerate(seq_lens(recipe)):
        assert {b.inputs.shape[1] for b in selector.pool(step)} == {length}


def test_a_search_trial_carries_what_selection_cost() -> None:
    """The figures a search worker reports (and the searcher copies to the trial)."""
    from archsearch.search.searcher import RESULT_ATTRS
    from archsearch.search.trainable import _training_figures

    figures = _training_figures(CONFIG, _recipe(pool=2), lambda point: None, 1)
    assert figures["selection_tokens"] == 2 * TINY_RECIPE["token_budget"]
    assert figures["selection_macs"] > 0 and figures["selection_s"] > 0
    assert {"selection_tokens", "selection_macs", "selection_s"} <= set(RESULT_ATTRS)
    assert "selection_tokens" not in _training_figures(CONFIG, _recipe(), lambda point: None, 1)
