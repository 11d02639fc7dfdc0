"""De-duplication of training documents: what is dropped, what is kept, and what never changes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.errors import InputError
from archsearch.evaluate import load_recipe
from archsearch.evaluate.corpus import is_validation, load_corpus, paragraph_sizes, split_sizes
from archsearch.evaluate.data import load_files, load_text, make_batches, row_sizes
from archsearch.evaluate.dedup import NEAR_THRESHOLD, SHINGLE_WORDS, find_duplicates

WORDS = [f"w{i}" for i in range(400)]


def _text(seed: int, lines: int = 60, per_line: int = 10) -> str:
    """Random lines of words: two different seeds share almost no 5-word run."""
    rng = random.Random(seed)
    return "".join(" ".join(rng.choices(WORDS, k=per_line)) + "\n" for _ in range(lines))


def _edit_lines(text: str, lines: list[int], seed: int) -> str:
    """``text`` with some lines replaced by new random ones: a near-duplicate."""
    rng = random.Random(seed)
    out = text.splitlines(keepends=True)
    for line in lines:
        out[line] = " ".join(rng.choices(WORDS, k=10)) + "\n"
    return "".join(out)


def _names(count: int, *, valid: bool) -> list[str]:
    """File names that the stable path hash puts in the validation (or training) split."""
    found = [f"doc_{i:03d}.txt" for i in range(1000) if is_validation(f"doc_{i:03d}.txt") == valid]
    return found[:count]


def _reference_shingles(text: bytes) -> set[tuple[bytes, ...]]:
    """Independent reference: the set of word 5-grams, as tuples (no hashing at all)."""
    words = text.split()
    if len(words) < SHINGLE_WORDS:
        return {tuple(words)}
    return {tuple(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _reference_jaccard(a: bytes, b: bytes) -> float:
    sa, sb = _reference_shingles(a), _reference_shingles(b)
    return len(sa & sb) / len(sa | sb)


@pytest.fixture()
def planted(tmp_path: Path) -> dict[str, object]:
    """A folder of distinct files plus planted duplicates of known kinds."""
    root = tmp_path / "corpus"
    root.mkdir()
    train = _names(12, valid=False)
    (valid_name,) = _names(1, valid=True)
    texts = {name: _text(seed) for seed, name in enumerate(train)}
    texts[valid_name] = _text(100)
    original, exact_copy, near_copy, leak = train[2], train[7], train[9], train[5]
    # the same words, other whitespace: re-indented, CRLF, trailing blanks
    texts[exact_copy] = "   " + texts[original].replace(" ", " \t ").replace("\n", "\r\n\n") + "  "
    texts[near_copy] = _edit_lines(texts[train[3]], [4, 20, 41], seed=7)
    texts[leak] = texts[valid_name]
    for name, text in texts.items():
        (root / name).write_text(text)
    return {
        "root": root,
        "texts": {name: text.encode() for name, text in texts.items()},
        "original": original,
        "exact": exact_copy,
        "near": near_copy,
        "near_of": train[3],
        "leak": leak,
        "valid": valid_name,
    }


def _dropped(root: Path, mode: str) -> set[str]:
    base = load_files(root)
    return set(base.train_files) - set(load_text(f"files:{root}", dedup=mode).train_files)


def test_exact_drops_whitespace_variants_and_validation_copies(planted: dict) -> None:
    root = planted["root"]
    base = load_files(root)
    assert planted["valid"] in base.valid_files  # the split is what the names were chosen for
    assert _dropped(root, "exact") == {planted["exact"], planted["leak"]}
    # the copy that sorts first is the one kept; the later one (or the validation twin) goes
    assert sorted([planted["original"], planted["exact"]])[0] == planted["original"]
    deduped = load_text(f"files:{root}", dedup="exact")
    kept = [name for name in base.train_files if name not in _dropped(root, "exact")]
    assert list(deduped.train_files) == kept
    # the training bytes are exactly the kept files, in order, read independently from disk
    assert deduped.train.numpy().tobytes() == b"".join((root / n).read_bytes() for n in kept)
    assert deduped.documents("train") == [(root / n).read_bytes() for n in kept]


def test_near_drops_edited_copies_that_exact_keeps(planted: dict) -> None:
    root, texts = planted["root"], planted["texts"]
    similarity = _reference_jaccard(texts[planted["near"]], texts[planted["near_of"]])
    assert NEAR_THRESHOLD <= similarity < 1.0  # the planted copy is near, not exact
    assert planted["near"] not in _dropped(root, "exact")
    assert _dropped(root, "near") == {planted["exact"], planted["leak"], planted["near"]}


def test_near_matches_a_brute_force_reference() -> None:
    """LSH must find every pair above the threshold that comparing all pairs finds."""
    base = [_text(seed, lines=30).encode() for seed in range(8)]
    edits = [[1], [2, 9], [3, 10, 17], [4, 11, 18, 25], [0, 5, 12, 19, 26, 29]]
    documents = base + [
        _edit_lines(base[i].decode(), lines, seed=i).encode() for i, lines in enumerate(edits)
    ]
    expected = []  # greedy in order, compared with kept documents only
    kept: list[bytes] = []
    for position, document in enumerate(documents):
        if any(_reference_jaccard(document, other) >= NEAR_THRESHOLD for other in kept):
            expected.append(position)
        else:
            kept.append(document)
    assert 0 < len(expected) < len(edits)  # some edits stay above the threshold, some do not
    found = find_duplicates(documents, [], "near")
    assert [d.index for d in found] == expected
    for duplicate in found:
        assert duplicate.of_split == "train"
        reference = _reference_jaccard(documents[duplicate.index], documents[duplicate.of])
        assert duplicate.similarity == pytest.approx(reference)


def test_different_documents_are_all_kept() -> None:
    documents = [_text(seed).encode() for seed in range(20)]
    for mode in ("exact", "near"):
        assert find_duplicates(documents, [_text(99).encode()], mode) == []


def test_validation_never_changes_and_fingerprints_differ_by_mode(planted: dict) -> None:
    root = planted["root"]
    corpora = {mode: load_text(f"files:{root}", dedup=mode) for mode in ("none", "exact", "near")}
    assert corpora["none"] is load_files(root)
    prints = {corpus.fingerprint for corpus in corpora.values()}
    assert len(prints) == 3
    valid = corpora["none"].valid.numpy().tobytes()
    assert valid == b"".join(planted["texts"][name] for name in corpora["none"].valid_files)
    recipe = load_recipe("lm_brief").replace(
        data=f"files:{root}",
        seq_len=16,
        batch_size=2,
        token_budget=32,
        eval_tokens=32,
        eval_points=1,
    )
    batches = {mode: make_batches(recipe.replace(dedup=mode)) for mode in corpora}
    for mode, corpus in corpora.items():
        assert corpus.valid.numpy().tobytes() == valid
        assert corpus.valid_files == corpora["none"].valid_files
        assert batches[mode].fingerprint == corpus.fingerprint
        assert batches[mode].valid(0).inputs.equal(batches["none"].valid(0).inputs)


def test_fingerprint_differs_even_when_nothing_is_dropped(tmp_path: Path) -> None:
    for seed in range(6):
        (tmp_path / f"f{seed}.txt").write_text(_text(seed))
    base = load_files(tmp_path)
    exact = load_text(f"files:{tmp_path}", dedup="exact")
    assert exact.train.equal(base.train) and exact.fingerprint != base.fingerprint


def test_dedup_is_the_same_in_processes_with_different_hash_seeds(planted: dict) -> None:
    script = (
        "import hashlib, json, sys\n"
        "from archsearch.evaluate.data import load_text\n"
        "from archsearch.evaluate.dedup import find_duplicates, minhash, normalise, shingles\n"
        "out = {}\n"
        "for mode in ('exact', 'near'):\n"
        "    c = load_text('files:' + sys.argv[1], dedup=mode)\n"
        "    out[mode] = [c.fingerprint, list(c.train_files),\n"
        "                 hashlib.sha256(c.train.numpy().tobytes()).hexdigest()]\n"
        "doc = open(sys.argv[2], 'rb').read()\n"
        "out['signature'] = minhash(shingles(normalise(doc))).tolist()\n"
        "print(json.dumps(out))\n"
    )
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        args = [sys.executable, "-c", script, str(planted["root"])]
        args.append(str(planted["root"] / planted["original"]))
        done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    assert set(runs[0]["exact"][1]) - set(runs[0]["near"][1]) == {planted["near"]}


def test_paragraphs_of_a_single_file_are_documents(tmp_path: Path) -> None:
    paragraphs = [_text(seed, lines=3) for seed in range(40)]
    paragraphs[30] = paragraphs[4].replace(" ", "  ")  # a repeated paragraph, other spacing
    text = "\n \n".join(paragraphs).encode()
    assert b"".join(split_sizes(text, paragraph_sizes(text))) == text
    assert len(paragraph_sizes(text)) == len(paragraphs)
    (tmp_path / "book.txt").write_bytes(text)
    base = load_files(tmp_path / "book.txt")
    deduped = load_text(f"files:{tmp_path / 'book.txt'}", dedup="exact")
    documents = base.documents("train")
    assert len(documents) > 31  # only the last paragraphs are in the validation 5%
    assert documents[:4] == [p.encode() + b"\n \n" for p in paragraphs[:4]]
    expected = b"".join(d for i, d in enumerate(documents) if i != 30)
    assert deduped.train.numpy().tobytes() == expected
    assert deduped.valid.equal(base.valid)


def test_rows_joined_by_newlines_are_documents() -> None:
    rows = [b"first row", b"", b"third\nrow with a newline", b"last"]
    joined = b"\n".join(rows)
    documents = split_sizes(joined, row_sizes(rows))
    assert b"".join(documents) == joined
    assert [d.removesuffix(b"\n") for d in documents] == rows


def test_python_stdlib_near_drops_a_superset_of_exact() -> None:
    base = load_corpus("python_stdlib")
    exact = load_text("python_stdlib", dedup="exact")
    near = load_text("python_stdlib", dedup="near")
    dropped = {
        mode: set(base.train_files) - set(c.train_files)
        for mode, c in (("exact", exact), ("near", near))
    }
    assert dropped["exact"] <= dropped["near"]
    assert len(dropped["near"]) < len(base.train_files) // 10  # duplicates are the exception
    assert near.valid is base.valid


def test_synthetic_data_refuses_dedup() -> None:
    with pytest.raises(InputError) as caught:
        load_recipe("mqar").replace(dedup="exact")
    assert caught.value.key == "dedup"
