"""Evaluator recipes: the built-in loads, and every kind of bad input names its file and key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from archsearch.builtins import list_builtins
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe, load_recipe


def _builtin_data() -> dict[str, Any]:
    return yaml.safe_load(Path(_builtin_path()).read_text())


def _builtin_path() -> str:
    return str(load_recipe("lm_brief").source)


def test_builtin_recipe_loads_and_is_listed() -> None:
    recipe = load_recipe("lm_brief")
    assert "lm_brief" in list_builtins("evaluators")
    assert recipe.name == "lm_brief"
    assert recipe.tokenizer == "bytes" and recipe.vocab_size == 256
    assert recipe.token_budget % recipe.tokens_per_step == 0
    assert recipe.steps * recipe.tokens_per_step == recipe.token_budget
    assert 1 <= recipe.eval_points <= recipe.steps
    assert load_recipe(_builtin_path()) == recipe  # by path, same recipe


def test_to_dict_round_trips_through_yaml() -> None:
    recipe = load_recipe("lm_brief")
    text = yaml.safe_dump(recipe.to_dict())
    assert Recipe.from_dict(yaml.safe_load(text)) == recipe


def test_replace_validates_again() -> None:
    recipe = load_recipe("lm_brief")
    assert recipe.replace(token_budget=2 * recipe.token_budget).steps == 2 * recipe.steps
    with pytest.raises(InputError) as info:
        recipe.replace(token_budget=recipe.token_budget + 1)
    assert info.value.key == "token_budget"


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


def _delete(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    del data[last]


# (test id, change to apply to the built-in, the key the error must name)
BAD_VALUES = [
    ("unknown top-level key", ("set", "learning_rate", 0.1), "learning_rate"),
    ("unknown nested key", ("set", "optimizer.momentum", 0.9), "optimizer.momentum"),
    ("missing key", ("del", "seq_len", None), "seq_len"),
    ("missing nested key", ("del", "schedule.final_lr_ratio", None), "schedule.final_lr_ratio"),
    ("integer as text", ("set", "seq_len", "128"), "seq_len"),
    ("integer as float", ("set", "batch_size", 16.0), "batch_size"),
    ("boolean as integer", ("set", "seed", True), "seed"),
    ("number as text", ("set", "optimizer.lr", "fast"), "optimizer.lr"),
    ("section not a mapping", ("set", "optimizer", 0.001), "optimizer"),
    ("betas not a pair", ("set", "optimizer.betas", [0.9]), "optimizer.betas"),
    ("name not text", ("set", "name", 3), "name"),
    ("zero seq_len", ("set", "seq_len", 0), "seq_len"),
    ("zero lr", ("set", "optimizer.lr", 0.0), "optimizer.lr"),
    ("negative weight decay", ("set", "optimizer.weight_decay", -0.1), "optimizer.weight_decay"),
    ("beta of one", ("set", "optimizer.betas", [0.9, 1.0]), "optimizer.betas"),
    ("full warm-up", ("set", "schedule.warmup_fraction", 1.0), "schedule.warmup_fraction"),
    ("final lr above peak", ("set", "schedule.final_lr_ratio", 1.5), "schedule.final_lr_ratio"),
    ("zero grad clip", ("set", "grad_clip", 0), "grad_clip"),
    ("infinite grad clip", ("set", "grad_clip", float("inf")), "grad_clip"),
    ("negative seed", ("set", "seed", -1), "seed"),
    ("unknown tokenizer", ("set", "tokenizer", "wordpiece"), "tokenizer"),
    ("bpe without vocab_size", ("set", "tokenizer", "bpe"), "vocab_size"),
    ("bytes with another vocab_size", ("set", "vocab_size", 512), "vocab_size"),
    ("unknown dedup mode", ("set", "dedup", "fuzzy"), "dedup"),
    ("unknown proxy", ("set", "proxy", "snip"), "proxy"),
    ("curriculum not a mapping", ("set", "curriculum", 32), "curriculum"),
    ("curriculum unknown key", ("set", "curriculum", {"start": 32}), "curriculum.start"),
    (
        "curriculum longer than seq_len",
        ("set", "curriculum", {"start_seq_len": 4096, "fraction": 0.5}),
        "curriculum.start_seq_len",
    ),
    (
        "curriculum zero fraction",
        ("set", "curriculum", {"start_seq_len": 32, "fraction": 0.0}),
        "curriculum.fraction",
    ),
    ("selection pool of one", ("set", "selection", {"pool": 1}), "selection.pool"),
    (
        "unknown selection criterion",
        ("set", "selection", {"pool": 2, "by": "grad"}),
        "selection.by",
    ),
    ("unknown task", ("set", "task", "seq2seq"), "task"),
    ("unknown data", ("set", "data", "wikitext"), "data"),
    ("unknown optimizer", ("set", "optimizer.name", "sgd"), "optimizer.name"),
    ("budget not whole steps", ("set", "token_budget", 100_000), "token_budget"),
    ("eval not whole batches", ("set", "eval_tokens", 1000), "eval_tokens"),
    ("more eval points than steps", ("set", "eval_points", 10_000), "eval_points"),
]


@pytest.mark.parametrize(
    ("change", "key"), [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES]
)
def test_bad_recipe_names_file_and_key(
    tmp_path: Path, change: tuple[str, str, Any], key: str
) -> None:
    data = copy.deepcopy(_builtin_data())
    action, dotted, value = change
    if action == "set":
        _set(data, dotted, value)
    else:
        _delete(data, dotted)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_recipe(path)
    assert info.value.source == str(path)
    assert info.value.key == key
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_exponent_without_dot_gets_a_hint(tmp_path: Path) -> None:
    text = Path(_builtin_path()).read_text().replace("lr: 2.0e-3", "lr: 2e-3")
    assert "lr: 2e-3" in text
    path = tmp_path / "hint.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_recipe(path)
    assert info.value.key == "optimizer.lr"
    assert "write it with a dot: 2.0e-3" in info.value.message


@pytest.mark.parametrize("text", ["seq_len: [1, 2\n", "- just\n- a list\n", ""])
def test_unreadable_recipe_names_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_recipe(path)
    assert info.value.source == str(path)


def test_unknown_builtin_names_the_option() -> None:
    with pytest.raises(InputError) as info:
        load_recipe("no_such_recipe")
    assert info.value.key == "--evaluator"
    assert "lm_brief" in info.value.message


@pytest.mark.parametrize(
    ("vocab", "fine"), [(256, False), (257, True), (65536, True), (65537, False)]
)
def test_bpe_vocab_size_range(vocab: int, fine: bool) -> None:
    data = {**copy.deepcopy(_builtin_data()), "tokenizer": "bpe", "vocab_size": vocab}
    if fine:
        assert Recipe.from_dict(data).vocab_size == vocab
    else:
        with pytest.raises(InputError) as info:
            Recipe.from_dict(data)
        assert info.value.key == "vocab_size"


def test_optional_keys_round_trip_through_to_dict() -> None:
    data = {
        **copy.deepcopy(_builtin_data()),
        "tokenizer": "bpe",
        "vocab_size": 512,
        "dedup": "near",
        "curriculum": {"start_seq_len": 32, "fraction": 0.5},
    }
    recipe = Recipe.from_dict(data)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert Recipe.from_dict(recipe.to_yaml_dict()) == recipe
    plain = load_recipe("lm_brief")
    assert set(plain.to_yaml_dict()) == set(_builtin_data()), "defaults stay out of the file"


def test_proxy_recipe_may_leave_out_training_keys() -> None:
    data = copy.deepcopy(_builtin_data())
    for key in ("token_budget", "optimizer", "schedule", "grad_clip", "eval_tokens", "eval_points"):
        del data[key]
    with pytest.raises(InputError) as info:
        Recipe.from_dict(data)
    assert info.value.key == "token_budget", "without proxy the training keys are required"
    recipe = Recipe.from_dict({**data, "proxy": "grad_norm"})
    assert recipe.scores_by_proxy and recipe.steps == 1 and recipe.eval_batches == 1
    assert recipe.optimizer == load_recipe("lm_brief").optimizer
