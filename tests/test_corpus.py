"""The byte corpus: split by file, deterministic, fingerprinted, capped, cached."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from archsearch.errors import InputError
from archsearch.evaluate.corpus import (
    EXCLUDED_DIRS,
    is_validation,
    load_corpus,
    load_tree,
)

VERSION = "CPython 3.99.0"


def _fake_stdlib(root: Path, modules: int = 120) -> dict[str, bytes]:
    """A folder shaped like a standard library; returns the files a corpus should use."""
    eligible: dict[str, bytes] = {}
    for index in range(modules):
        folder = "" if index % 3 else f"pkg{index % 4}/"
        relative = f"{folder}mod_{index}.py"
        content = f"# module {index}\ndef f{index}(x):\n    return x * {index}\n".encode()
        eligible[relative] = content
    for relative, content in eligible.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    ignored = {
        "site-packages/numpy_like.py": b"x = 1\n",
        "test/test_mod.py": b"x = 2\n",
        "pkg0/tests/test_inner.py": b"x = 3\n",
        "idlelib/editor.py": b"x = 4\n",
        "lib2to3/fixer.py": b"x = 5\n",
        "__pycache__/mod_1.py": b"x = 6\n",
        "latin1.py": "caf\xe9 = 1\n".encode("latin-1"),  # not valid UTF-8
        "notes.txt": b"not python\n",
    }
    for relative, content in ignored.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)
    return eligible


def test_split_is_by_file_disjoint_and_complete(tmp_path: Path) -> None:
    eligible = _fake_stdlib(tmp_path)
    corpus = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    assert set(corpus.train_files).isdisjoint(corpus.valid_files)
    assert set(corpus.train_files) | set(corpus.valid_files) == set(eligible)
    assert corpus.train_files and corpus.valid_files
    assert list(corpus.train_files) == sorted(corpus.train_files)
    # Each split is exactly its files' bytes, concatenated in sorted order.
    for files, data in ((corpus.train_files, corpus.train), (corpus.valid_files, corpus.valid)):
        expected = b"".join(eligible[name] for name in files)
        assert data.dtype == torch.uint8 and data.dim() == 1
        assert bytes(data.tolist()) == expected


def test_a_file_keeps_its_split_when_other_files_come_and_go(tmp_path: Path) -> None:
    eligible = _fake_stdlib(tmp_path)
    before = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    (tmp_path / "extra_module.py").write_bytes(b"y = 2\n")
    (tmp_path / sorted(eligible)[0]).unlink()
    after = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    survivors = set(eligible) - {sorted(eligible)[0]}
    assert {f for f in before.valid_files if f in survivors} == {
        f for f in after.valid_files if f in survivors
    }
    assert ("extra_module.py" in after.valid_files) == is_validation("extra_module.py")


def test_loading_is_deterministic(tmp_path: Path) -> None:
    _fake_stdlib(tmp_path)
    first = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    second = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    assert first.fingerprint == second.fingerprint
    assert torch.equal(first.train, second.train) and torch.equal(first.valid, second.valid)


def test_fingerprint_follows_content_names_and_python_version(tmp_path: Path) -> None:
    eligible = _fake_stdlib(tmp_path)
    base = load_tree(tmp_path, max_bytes=None, python_version=VERSION).fingerprint
    assert load_tree(tmp_path, max_bytes=None, python_version="CPython 3.12.0").fingerprint != base

    victim = tmp_path / sorted(eligible)[5]
    victim.write_bytes(victim.read_bytes().replace(b"return", b"yield "))  # same length
    edited = load_tree(tmp_path, max_bytes=None, python_version=VERSION).fingerprint
    assert edited != base

    victim.write_bytes(eligible[sorted(eligible)[5]])
    assert load_tree(tmp_path, max_bytes=None, python_version=VERSION).fingerprint == base

    victim.rename(victim.with_name("renamed_module.py"))
    assert load_tree(tmp_path, max_bytes=None, python_version=VERSION).fingerprint != base


def test_max_bytes_keeps_a_prefix_of_each_split(tmp_path: Path) -> None:
    _fake_stdlib(tmp_path)
    full = load_tree(tmp_path, max_bytes=None, python_version=VERSION)
    cap = 300
    capped = load_tree(tmp_path, max_bytes=cap, python_version=VERSION)
    assert capped.train.numel() == cap
    assert torch.equal(capped.train, full.train[:cap])
    assert torch.equal(capped.valid, full.valid[: min(cap, full.valid.numel())])
    assert capped.fingerprint != full.fingerprint


def test_python_stdlib_corpus_is_real_split_and_cached() -> None:
    start = time.perf_counter()
    corpus = load_corpus("python_stdlib")
    assert time.perf_counter() - start < 2.0
    assert load_corpus("python_stdlib") is corpus
    assert corpus.train.numel() > 1_000_000 and corpus.valid.numel() > 50_000
    assert set(corpus.train_files).isdisjoint(corpus.valid_files)
    for name in corpus.train_files + corpus.valid_files:
        assert name.endswith(".py")
        assert not EXCLUDED_DIRS & set(name.split("/")[:-1])
    share = len(corpus.valid_files) / (len(corpus.train_files) + len(corpus.valid_files))
    assert 0.02 < share < 0.12
    assert len(corpus.fingerprint) == 64
    assert "standard library" in corpus.description


def test_unknown_corpus_and_bad_cap_are_input_errors() -> None:
    with pytest.raises(InputError) as info:
        load_corpus("wikitext")
    assert info.value.key == "data"
    with pytest.raises(InputError) as info:
        load_corpus("python_stdlib", max_bytes=0)
    assert info.value.key == "max_bytes"
