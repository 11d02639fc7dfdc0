"""Byte-level BPE recipes: lossless, deterministic, trained on the training split only, cached,
and scored in bits per byte that compare with the bytes tokenizer."""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_RECIPE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import archsearch
from archsearch import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate import evaluate, load_recipe
from archsearch.evaluate import tokenizer as T
from archsearch.evaluate.data import data_fingerprint, load_files, make_batches, split_files
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import check_compatible, fit, uniform_bpb, validate
from archsearch.models.output import ModelOutput

SEQ_LEN, ROWS, VOCAB = 32, 4, 320
WORDS = [
    "def",
    "return",
    "self",
    "value",
    "index",
    "items",
    "name",
    "data",
    "result",
    "count",
    "total",
    "print",
    "if",
    "else",
    "for",
    "in",
    "while",
    "import",
    "from",
    "class",
    "none",
    "true",
    "false",
    "list",
    "dict",
    "append",
    "key",
    "open",
    "read",
    "write",
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tokenizers are cached under a private folder; no test sees another's encoded tensors."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(cache))
    monkeypatch.setattr(T, "_ENCODED", {})
    return cache


def _python_like(seed: int, lines: int = 120) -> bytes:
    """Lower-case, indented, code-shaped text (no upper case: see the validation-only test)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(lines):
        indent = "    " * rnd.randrange(3)
        words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(2, 7)))
        out.append(f"{indent}{words}({rnd.choice(WORDS)}, {rnd.randrange(100)}):")
    return ("\n".join(out) + "\n").encode()


def _folder(root: Path, *, files: int = 8, valid_text: bytes | None = None) -> Path:
    """Text files under ``root``; ``valid_text`` replaces the content of validation files."""
    root.mkdir(parents=True, exist_ok=True)
    names = [f"mod_{index}.py" for index in range(files)]
    valid = split_files(names)
    for index, name in enumerate(names):
        content = _python_like(index)
        if name in valid and valid_text is not None:
            content = valid_text
        (root / name).write_bytes(content)
    return root


def _recipe(root: Path, **changes: Any) -> Recipe:
    base = {
        **TINY_RECIPE,
        "data": f"files:{root}",
        "tokenizer": "bpe",
        "vocab_size": VOCAB,
        "seq_len": SEQ_LEN,
        "batch_size": ROWS,
        "token_budget": 2 * SEQ_LEN * ROWS,
        "eval_tokens": 3 * SEQ_LEN * ROWS,
        "eval_points": 2,
    }
    return Recipe.from_dict({**base, **changes})


def _config(**changes: Any) -> ArchConfig:
    base = {"d_model": 32, "n_layers": 1, "heads": 2, "ffn_ratio": 2.0, "max_seq_len": 64}
    return ArchConfig.from_dict({**base, "vocab_size": 512, **changes})


@pytest.fixture(scope="module")
def trained() -> T.ByteBPE:
    return T.train_bpe(b"".join(_python_like(seed) for seed in range(6)), VOCAB)


# ---- the tokenizer ---------------------------------------------------------------------------


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_any_bytes_round_trip(trained: T.ByteBPE, data: bytes) -> None:
    assert trained.decode(trained.encode(data)) == data


def test_round_trip_of_invalid_utf8_and_every_byte(trained: T.ByteBPE) -> None:
    samples = [
        b"",
        bytes(range(256)) * 2,
        b"\xff\xfe\x80\xc3(\xa0\xa1 \x00\x00 \xe2\x82",  # invalid UTF-8 sequences
        b"  \n\n\t \r\n    x = 1  \n\x85\xa0 y",  # whitespace, NEL and NBSP bytes
        "naïve café — ✓".encode(),
    ]
    for data in samples:
        assert trained.decode(trained.encode(data)) == data
    text = _python_like(99)  # unseen text of the same kind: merges shorten it
    ids = trained.encode(text)
    assert trained.decode(ids) == text and ids.size < len(text) / 1.5
    assert trained.vocab_size == VOCAB and int(ids.max()) < VOCAB


def test_chunked_encoding_equals_encoding_the_whole_text(trained: T.ByteBPE) -> None:
    """Chunks are cut only where no pre-token spans the cut, so the ids are the same."""
    lines = []
    for seed in range(400):
        rnd = random.Random(seed)
        lines.append(" " * rnd.randrange(6) + rnd.choice(WORDS) + " " * rnd.randrange(3))
        lines.extend([""] * rnd.randrange(2))
    text = "\n".join(lines).encode()
    chunked = T._chunks(text.decode("latin-1"))
    assert len(chunked) == 1  # too short to cut at the default size: cut smaller
    original = T.CHUNK_CHARS
    try:
        T.CHUNK_CHARS = 64
        assert len(T._chunks(text.decode("latin-1"))) > 4
        ids = trained.encode(text).tolist()
    finally:
        T.CHUNK_CHARS = original
    whole = trained._tokenizer.encode(text.decode("latin-1")).ids
    assert ids == whole


def test_training_is_deterministic_within_and_across_processes(tmp_path: Path) -> None:
    text = b"".join(_python_like(seed) for seed in range(4))
    first, second = T.train_bpe(text, VOCAB), T.train_bpe(text, VOCAB)
    assert first.to_json() == second.to_json()
    (tmp_path / "text").write_bytes(text)
    script = (
        "import sys; from pathlib import Path; from archsearch.evaluate.tokenizer import "
        f"train_bpe; sys.stdout.write(train_bpe(Path(sys.argv[1]).read_bytes(), {VOCAB}).to_json())"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "text")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert other == first.to_json()  # another process: other hash seeds, same merges
    assert json.loads(other)["model"]["merges"]


def test_the_tokenizer_never_sees_validation_text(tmp_path: Path) -> None:
    """Upper case occurs only in validation files: no learned symbol holds it, and changing
    the validation text leaves the tokenizer exactly as it was."""
    marker = b"QUUX ZYZZY QUUX ZYZZY\n" * 200
    corpus = load_files(_folder(tmp_path / "a", valid_text=marker))
    assert corpus.valid.numel() >= len(marker) and b"Q" not in corpus.train.numpy().tobytes()
    bpe = T.load_bpe(corpus, VOCAB)
    merged = bpe.pieces[T.BYTES :]
    assert merged and not any(set(piece) & set(b"QUXZY") for piece in merged)
    other = load_files(_folder(tmp_path / "b", valid_text=b"other validation text\n" * 50))
    assert other.fingerprint != corpus.fingerprint  # a different corpus, trained separately
    assert T.load_bpe(other, VOCAB).to_json() == bpe.to_json()


def test_the_tokenizer_is_cached_on_disk_as_json(tmp_path: Path, private_cache: Path) -> None:
    corpus = load_files(_folder(tmp_path / "text"))
    path = T.cache_path(corpus.fingerprint, VOCAB)
    assert path.parent.parent == private_cache  # under ARCHSEARCH_CACHE_DIR
    assert path != T.cache_path(corpus.fingerprint, VOCAB + 1)
    bpe = T.load_bpe(corpus, VOCAB)
    assert json.loads(path.read_text())["model"]["type"] == "BPE"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    # A second load reads the file: plant another valid tokenizer there and get it back.
    planted = T.train_bpe(_python_like(7), VOCAB - 40)
    path.write_text(planted.to_json())
    assert T.load_bpe(corpus, VOCAB).to_json() == planted.to_json()
    # A broken file is trained again and replaced.
    path.write_text(path.read_text()[:100])
    with pytest.warns(UserWarning, match="retraining"):
        assert T.load_bpe(corpus, VOCAB).to_json() == bpe.to_json()
    assert T.ByteBPE.from_json(path.read_text()).to_json() == bpe.to_json()


def test_missing_tokenizers_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = _recipe(_folder(tmp_path / "text"))
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` now fails
    with pytest.raises(InputError) as caught:
        make_batches(recipe)
    assert caught.value.key == "tokenizer" and "pip install 'archsearch[bpe]'" in str(caught.value)


def test_bpe_is_refused_for_synthetic_tasks() -> None:
    with pytest.raises(InputError) as caught:
        Recipe.from_dict(
            {**TINY_RECIPE, "data": "synthetic:mqar", "tokenizer": "bpe", "vocab_size": VOCAB}
        )
    assert caught.value.key == "tokenizer"


# ---- the data path ---------------------------------------------------------------------------


def test_fingerprint_changes_with_tokenizer_and_vocab_size(tmp_path: Path) -> None:
    root = _folder(tmp_path / "text")
    bpe = _recipe(root)
    fingerprints = {
        data_fingerprint(_recipe(root, tokenizer="bytes", vocab_size=None)),
        data_fingerprint(bpe),
        data_fingerprint(_recipe(root, vocab_size=VOCAB + 16)),
    }
    assert len(fingerprints) == 3
    first = data_fingerprint(bpe)
    T._ENCODED.clear()  # the disk cache now serves the tokenizer: same data, same fingerprint
    assert data_fingerprint(bpe) == first


def test_bpe_streams_continue_each_row_from_step_to_step(tmp_path: Path) -> None:
    """What memory models (Transformer-XL, compressive) rely on: row b of step i+1 continues
    row b of step i, in tokens as in bytes."""
    recipe = _recipe(_folder(tmp_path / "text"))
    batches = make_batches(recipe)
    bpe = T.encode_corpus(load_files(tmp_path / "text"), VOCAB).bpe
    first, second = batches.train(0), batches.train(1)
    assert torch.equal(second.inputs[:, 0], first.targets[:, -1])
    assert first.fresh and not second.fresh
    train = load_files(tmp_path / "text").train.numpy().tobytes()
    for row in range(ROWS):
        joined = bpe.decode(torch.cat([first.inputs[row], second.inputs[row]]))
        assert len(joined) > 2 * SEQ_LEN and joined in train


# ---- scoring in bits per byte ----------------------------------------------------------------


def _reference(model: nn.Module, ids: torch.Tensor, segments: int, byte_len: Any) -> float:
    """Bits per byte by hand: ``ROWS`` contiguous streams of ``ids``, segment after segment;
    nats summed in float64 over every target, divided by the bytes the targets stand for."""
    length = ids.numel() // ROWS
    streams = ids[: ROWS * length].view(ROWS, length).long()
    per_stream = (length - 1) // SEQ_LEN
    nats, scored_bytes = 0.0, 0
    with torch.no_grad():
        for index in range(segments):
            start = (index % per_stream) * SEQ_LEN
            window = streams[:, start : start + SEQ_LEN + 1]
            logits = model(window[:, :-1]).logits.double()
            targets = window[:, 1:]
            nats += float(F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum"))
            scored_bytes += sum(byte_len(int(t)) for t in targets.flatten())
    return nats / scored_bytes / math.log(2)


def _fit_two_steps(config: ArchConfig, recipe: Recipe) -> tuple[nn.Module, nn.Module, list]:
    """A model trained for the recipe's two steps (one validation point each), and a copy of
    the weights it started from."""
    torch.manual_seed(recipe.seed)
    model = archsearch.build_model(config)
    start = copy.deepcopy(model)
    curve = fit(model, recipe)
    return model.eval(), start.eval(), curve


def test_bytes_scores_are_what_they_were_before_bpe(tmp_path: Path) -> None:
    """val_bpb of a bytes recipe is bit-for-bit the old formula (mean of the batch means over
    ln 2), and agrees with an independent reference; so does train_bpb."""
    root = _folder(tmp_path / "text")
    recipe = _recipe(root, tokenizer="bytes", vocab_size=None)
    model, start, curve = _fit_two_steps(_config(vocab_size=256), recipe)
    batches = make_batches(recipe)
    measured = validate(model, batches, recipe)["val_bpb"]
    assert measured == curve[-1]["val_bpb"]
    old = 0.0
    with torch.no_grad():
        for index in range(recipe.eval_batches):
            batch = batches.valid(index)
            logits = model(batch.inputs).logits
            old += F.cross_entropy(logits.flatten(0, 1), batch.targets.flatten()).item()
    assert measured == old / recipe.eval_batches / math.log(2)
    corpus = load_files(root)
    reference = _reference(model, corpus.valid, recipe.eval_batches, lambda _: 1)
    assert measured == pytest.approx(reference, rel=1e-6)
    # train_bpb of the first point is the loss of the first step, taken with the start weights.
    first_step = _reference(start, corpus.train, 1, lambda _: 1)
    assert curve[0]["train_bpb"] == pytest.approx(first_step, rel=1e-6)


def test_bpe_scores_are_bits_per_byte_computed_by_hand(tmp_path: Path) -> None:
    root = _folder(tmp_path / "text")
    recipe = _recipe(root)
    model, start, curve = _fit_two_steps(_config(), recipe)
    corpus = load_files(root)
    bpe = T.train_bpe(corpus.train.numpy().tobytes(), VOCAB)  # trained afresh: no cache

    def byte_len(token: int) -> int:
        return len(bpe.decode([token]))

    valid_ids = torch.from_numpy(bpe.encode(corpus.valid.numpy().tobytes()))
    expected = _reference(model, valid_ids, recipe.eval_batches, byte_len)
    measured = validate(model, make_batches(recipe), recipe)["val_bpb"]
    assert measured == pytest.approx(expected, rel=1e-6)
    assert measured == curve[-1]["val_bpb"]
    train_ids = torch.from_numpy(bpe.encode(corpus.train.numpy().tobytes()))
    first_step = _reference(start, train_ids, 1, byte_len)
    assert curve[0]["train_bpb"] == pytest.approx(first_step, rel=1e-6)
    # Per token it would read differently: the conversion to bytes matters.
    per_token = _reference(model, valid_ids, recipe.eval_batches, lambda _: 1)
    assert per_token > 1.3 * measured


class Uniform(nn.Module):
    """A real model of the model contract that always guesses uniformly over ``vocab``."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor, state: Any = None) -> ModelOutput:
        logits = torch.zeros(*tokens.shape, self.vocab)
        return ModelOutput(logits=logits, aux_loss=torch.zeros(()))


def test_divergence_threshold_is_a_uniform_guess_in_bits_per_byte(tmp_path: Path) -> None:
    root = _folder(tmp_path / "text")
    for recipe in (_recipe(root, tokenizer="bytes", vocab_size=None), _recipe(root)):
        batches = make_batches(recipe)
        threshold = uniform_bpb(batches, recipe)
        assert validate(Uniform(recipe.vocab_size), batches, recipe)["val_bpb"] == pytest.approx(
            threshold, rel=1e-6
        )
        targets = torch.cat(
            [batches.valid(i).targets.flatten() for i in range(recipe.eval_batches)]
        )
        bpe = T.encode_corpus(load_files(root), VOCAB).bpe
        decoded = len(bpe.decode(targets)) if recipe.tokenizer == "bpe" else targets.numel()
        mean_bytes = decoded / targets.numel()
        assert threshold == pytest.approx(math.log2(recipe.vocab_size) / mean_bytes, rel=1e-9)
    assert mean_bytes > 1.5  # BPE: the threshold is well below log2(vocab)


def test_evaluate_a_bpe_recipe_end_to_end(tmp_path: Path) -> None:
    recipe = _recipe(_folder(tmp_path / "text"), token_budget=8 * SEQ_LEN * ROWS)
    result = evaluate(_config(), recipe)  # the model's vocabulary (512) is larger: fine
    assert math.isfinite(result.val_bpb) and math.isfinite(result.train_bpb)
    assert result.val_bpb < uniform_bpb(make_batches(recipe), recipe) and not result.diverged
    assert result.data_fingerprint == data_fingerprint(recipe)
    with pytest.raises(InputError) as caught:
        check_compatible(_config(vocab_size=256), recipe)
    assert caught.value.key == "vocab_size"


def test_lm_bpe_is_lm_brief_with_a_bpe_vocabulary() -> None:
    bpe, brief = load_recipe("lm_bpe"), load_recipe("lm_brief")
    assert (bpe.tokenizer, bpe.vocab_size) == ("bpe", 512)
    differs = {k for k, v in bpe.to_dict().items() if brief.to_dict()[k] != v}
    assert differs == {"name", "description", "tokenizer", "vocab_size"}
