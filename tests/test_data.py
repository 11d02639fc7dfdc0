"""Local text as a corpus, the data syntax of recipes, and the Hugging Face error path."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_RECIPE

from archsearch import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate import evaluate, load_recipe
from archsearch.evaluate.data import load_files, load_hf, make_batches, split_files
from archsearch.evaluate.recipe import Recipe


def _tree(root: Path, files: int = 12, size: int = 400) -> dict[str, bytes]:
    """A folder of text files (some nested) plus files a corpus must skip."""
    kept = {}
    for index in range(files):
        relative = f"{'sub/' if index % 3 == 0 else ''}doc_{index}.txt"
        kept[relative] = (f"document {index}: " + "lorem ipsum " * size)[:size].encode()
    skipped = {
        ".hidden.txt": b"secret",
        ".git/config": b"[core]",
        "image.bin": bytes(range(256)) * 4,  # not UTF-8
        "empty.txt": b"",
    }
    for relative, content in {**kept, **skipped}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return kept


def test_a_folder_is_split_by_file_disjoint_and_complete(tmp_path: Path) -> None:
    kept = _tree(tmp_path)
    corpus = load_files(tmp_path)
    assert set(corpus.train_files).isdisjoint(corpus.valid_files)
    assert set(corpus.train_files) | set(corpus.valid_files) == set(kept)
    assert corpus.train_files and corpus.valid_files
    for names, data in ((corpus.train_files, corpus.train), (corpus.valid_files, corpus.valid)):
        assert bytes(data.tolist()) == b"".join(kept[name] for name in names)


def test_few_files_still_give_both_splits() -> None:
    for names in (["a.txt", "b.txt"], ["x", "y", "z"], [f"f{i}" for i in range(7)]):
        valid = split_files(names)
        assert 1 <= len(valid) < len(names)
        assert split_files(list(reversed(names))) == valid  # order of listing does not matter


def test_a_single_file_is_split_by_position(tmp_path: Path) -> None:
    text = ("line of text\n" * 200).encode()
    (tmp_path / "one.txt").write_bytes(text)
    corpus = load_files(tmp_path / "one.txt")
    joined = bytes(corpus.train.tolist()) + bytes(corpus.valid.tolist())
    assert joined == text
    assert 0 < corpus.valid.numel() < corpus.train.numel()


def test_fingerprint_follows_the_bytes_not_the_location(tmp_path: Path) -> None:
    _tree(tmp_path / "a")
    _tree(tmp_path / "b")
    first = load_files(tmp_path / "a").fingerprint
    assert load_files(tmp_path / "b").fingerprint == first
    (tmp_path / "c").mkdir()
    _tree(tmp_path / "c")
    (tmp_path / "c" / "doc_1.txt").write_bytes(b"one changed document " * 10)
    assert load_files(tmp_path / "c").fingerprint != first


def test_a_recipe_trains_on_local_files_relative_to_its_folder(tmp_path: Path) -> None:
    _tree(tmp_path / "corpus", files=10, size=2000)
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump({**TINY_RECIPE, "data": "files:corpus"}))
    recipe = load_recipe(path)
    assert recipe.data == f"files:{(tmp_path / 'corpus').resolve()}"
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    config = ArchConfig.from_dict({"d_model": 16, "n_layers": 1, "heads": 2, "max_seq_len": 32})
    result = evaluate(config, recipe)
    assert result.data_fingerprint == load_files(tmp_path / "corpus").fingerprint
    assert result.val_bpb < math.log2(256)
    batch = make_batches(recipe).train(0)
    assert bytes(batch.inputs[0].to(torch.uint8).tolist()) in bytes(
        load_files(tmp_path / "corpus").train.tolist()
    )


def test_missing_or_unusable_text_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_files(tmp_path / "nowhere")
    assert info.value.key == "data"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError):
        load_files(tmp_path / "empty")
    (tmp_path / "short.txt").write_bytes(b"too short for a batch\n" * 3)
    recipe = Recipe.from_dict({**TINY_RECIPE, "data": f"files:{tmp_path / 'short.txt'}"})
    with pytest.raises(InputError) as info:
        make_batches(recipe)
    assert info.value.key == "data"


@pytest.mark.skipif(
    importlib.util.find_spec("datasets") is not None, reason="datasets is installed here"
)
def test_hugging_face_without_datasets_says_what_to_install() -> None:
    with pytest.raises(InputError) as info:
        load_hf("wikitext:wikitext-2-raw-v1")
    assert info.value.key == "data"
    assert "pip install datasets" in info.value.message
    recipe = Recipe.from_dict({**TINY_RECIPE, "data": "hf:wikitext:wikitext-2-raw-v1"})
    with pytest.raises(InputError):
        make_batches(recipe)


@pytest.mark.parametrize(
    ("data", "task", "key"),
    [
        ("synthetic:nope", "causal_lm", "data"),
        ("files:", "causal_lm", "data"),
        ("hf: ", "causal_lm", "data"),
        ("wikitext", "causal_lm", "data"),
        (3, "causal_lm", "data"),
        ("python_stdlib", "seq2seq", "task"),
        ("synthetic:reverse", "causal_lm", "task"),
        ("synthetic:mqar", "seq2seq", "task"),
    ],
)
def test_bad_data_in_a_recipe_names_the_key(data: object, task: str, key: str) -> None:
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TINY_RECIPE, "data": data, "task": task})
    assert info.value.key == key
