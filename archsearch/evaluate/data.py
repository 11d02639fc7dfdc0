"""Where a recipe's training and validation batches come from.

``data:`` in a recipe names one of:

- ``python_stdlib``: the built-in byte corpus (corpus.py);
- ``files:PATH``: a local text file or a folder of them. A folder is split BY FILE with the same
  stable path hash as the built-in corpus (so no file is in both splits); a single file is split
  by position, its last 5% held out;
- ``hf:NAME[:CONFIG]``: a Hugging Face dataset, an optional extra that needs the ``datasets``
  package and a network (a clear ``InputError`` otherwise);
- ``synthetic:TASK``: a generated task (synthetic.py).

Text becomes ``batch_size`` parallel contiguous token streams (``StreamBatches``), so row b of
step i+1 continues row b of step i and a model with recurrent memory carries its state across
segments. Tokens are bytes, or with ``tokenizer: bpe`` the ids of a byte-level BPE trained on the
training split (tokenizer.py); ``token_byte_lengths`` says how many bytes each id stands for, so
losses are still scored per byte. Every source has a fingerprint that changes whenever the tokens
it serves change (the tokenizer and its vocab_size included).

A recipe's ``dedup`` (dedup.py) drops duplicate training documents as the text is loaded; a
document is a file of ``python_stdlib`` or of a ``files:`` folder, a paragraph (ending at a run
of blank lines) of a single ``files:`` file, and a row of an ``hf:`` dataset. The mode is part of
the fingerprint; the validation bytes are the same in every mode. Synthetic tasks have no
documents to de-duplicate and fixed-format sequences, so ``dedup`` and ``curriculum`` are
refused for them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from archsearch.errors import InputError
from archsearch.evaluate.batch import IGNORE, Batch, Batches
from archsearch.evaluate.corpus import Corpus, is_validation, load_corpus, paragraph_sizes
from archsearch.evaluate.recipe import split_data

if TYPE_CHECKING:  # pragma: no cover
    from archsearch.evaluate.recipe import Recipe
    from archsearch.evaluate.tokenizer import TokenStreams

SINGLE_FILE_VALID_FRACTION = 0.05
_FORMAT = "archsearch-files-v1"  # bump when the layout below changes, so fingerprints change

_FILES_CACHE: dict[str, Corpus] = {}
_DEDUP_CACHE: dict[tuple[str, str], Corpus] = {}


class StreamBatches:
    """Text as ``rows`` contiguous streams per split; segment i is columns [i*T, (i+1)*T]."""

    answers_only = False

    def __init__(
        self,
        train: torch.Tensor,
        valid: torch.Tensor,
        *,
        rows: int,
        seq_len: int,
        fingerprint: str = "",
        description: str = "",
    ):
        self.fingerprint, self.description = fingerprint, description
        self.seq_len = seq_len
        self._train = _streams(train, rows)
        self._valid = _streams(valid, rows)
        for split, streams in (("train", self._train), ("validation", self._valid)):
            if streams.shape[1] < seq_len + 1:
                raise InputError(
                    f"the {split} split holds {streams.numel()} tokens, fewer than one batch of "
                    f"{rows} x {seq_len + 1}: use more text or a smaller batch_size / seq_len",
                    key="data",
                )

    @classmethod
    def from_corpus(cls, corpus: Corpus, *, rows: int, seq_len: int) -> StreamBatches:
        return cls(
            corpus.train,
            corpus.valid,
            rows=rows,
            seq_len=seq_len,
            fingerprint=corpus.fingerprint,
            description=corpus.description,
        )

    @property
    def train_streams(self) -> torch.Tensor:
        """The training split as ``[rows, length]`` token streams (read only; curriculum.py
        cuts its variable-length segments from them)."""
        return self._train

    def train(self, step: int) -> Batch:
        return segment(self._train, step, self.seq_len)

    def valid(self, index: int) -> Batch:
        return segment(self._valid, index, self.seq_len)


def make_batches(recipe: Recipe) -> Batches:
    """The batches a recipe trains and validates on."""
    scheme, value = split_data(recipe.data)
    if scheme == "synthetic":
        from archsearch.evaluate.synthetic import SyntheticBatches

        return SyntheticBatches(value, batch_size=recipe.batch_size, seq_len=recipe.seq_len)
    if recipe.tokenizer == "bpe":
        tokens = _bpe_streams(recipe)
        return StreamBatches(
            tokens.train,
            tokens.valid,
            rows=recipe.batch_size,
            seq_len=recipe.seq_len,
            fingerprint=tokens.fingerprint,
            description=tokens.description,
        )
    corpus = load_text(recipe.data, dedup=recipe.dedup)
    return StreamBatches.from_corpus(corpus, rows=recipe.batch_size, seq_len=recipe.seq_len)


def data_fingerprint(recipe: Recipe) -> str:
    """What identifies the tokens a recipe is measured on (stored beside every result)."""
    return make_batches(recipe).fingerprint


def token_byte_lengths(recipe: Recipe) -> torch.Tensor | None:
    """Bytes each token id of the recipe's data stands for; None where every scored token
    counts as one (the bytes tokenizer, and synthetic tasks, scored per answer token).

    A function of the recipe rather than of a ``Batches`` object, so wrappers such as the
    curriculum's batches need not carry it.
    """
    if recipe.tokenizer != "bpe" or recipe.data_scheme == "synthetic":
        return None
    return _bpe_streams(recipe).byte_lengths


def target_bytes(targets: torch.Tensor, lengths: torch.Tensor | None) -> int:
    """How many bytes the scored targets (those not ``IGNORE``) decode to."""
    scored = targets[targets != IGNORE]
    return int(scored.numel() if lengths is None else lengths[scored].sum())


def _bpe_streams(recipe: Recipe) -> TokenStreams:
    """The recipe's text encoded by its BPE (cached per process by tokenizer.py)."""
    from archsearch.evaluate.tokenizer import encode_corpus

    assert recipe.vocab_size is not None  # the recipe fills it in for every tokenizer
    return encode_corpus(load_text(recipe.data, dedup=recipe.dedup), recipe.vocab_size)


def load_text(data: str, dedup: str = "none") -> Corpus:
    """A text source named by ``data:`` -> train and validation bytes, de-duplicated by
    ``dedup`` (none, exact, near); cached per process for each (data, dedup)."""
    if dedup != "none":
        key = (data, dedup)
        if key not in _DEDUP_CACHE:
            from archsearch.evaluate.dedup import deduplicate

            _DEDUP_CACHE[key] = deduplicate(load_text(data), dedup)
        return _DEDUP_CACHE[key]
    scheme, value = split_data(data)
    if scheme == "corpus":
        return load_corpus(data)
    if scheme == "files":
        return load_files(value)
    if scheme == "hf":
        return load_hf(value)
    raise InputError(f"{data!r} is not text data", key="data")


def load_files(path: str | Path) -> Corpus:
    """A text file or a folder of text files (recursively) as a corpus; cached per process.

    Hidden files and folders are skipped, and so are files that are not UTF-8 text.
    """
    root = Path(path).expanduser().resolve()
    key = str(root)
    if key not in _FILES_CACHE:
        if root.is_file():
            _FILES_CACHE[key] = _single_file(root)
        elif root.is_dir():
            _FILES_CACHE[key] = _folder(root)
        else:
            raise InputError(f"no such file or folder: {root}", key="data")
    return _FILES_CACHE[key]


def load_hf(spec: str) -> Corpus:
    """``NAME[:CONFIG]`` of a Hugging Face dataset with a text column, train and validation."""
    name, _, config = spec.partition(":")
    try:
        import datasets  # optional extra: never a hard dependency
    except ImportError:
        raise InputError(
            f"'hf:{spec}' needs the optional Hugging Face 'datasets' package, which is not "
            "installed (pip install datasets), and a network connection; or use local text "
            "with files:PATH",
            key="data",
        ) from None
    try:
        loaded = datasets.load_dataset(name, config or None)
    except Exception as exc:  # offline, unknown name, missing config: all the user's to fix
        raise InputError(
            f"cannot load Hugging Face dataset {spec!r} ({type(exc).__name__}: {exc}); "
            "offline? download it once while online, or use files:PATH",
            key="data",
        ) from None
    valid_split = next((s for s in ("validation", "valid", "test") if s in loaded), None)
    if "train" not in loaded or valid_split is None:
        raise InputError(
            f"dataset {spec!r} needs a train split and a validation or test split, "
            f"has {', '.join(loaded)}",
            key="data",
        )
    splits = {"train": loaded["train"], "valid": loaded[valid_split]}
    columns = [
        c for c, f in splits["train"].features.items() if getattr(f, "dtype", "") == "string"
    ]
    if not columns:
        raise InputError(f"dataset {spec!r} has no text column", key="data")
    column = "text" if "text" in columns else columns[0]
    rows = {k: [row.encode("utf-8") for row in split[column]] for k, split in splits.items()}
    texts = {k: b"\n".join(chunk) for k, chunk in rows.items()}
    digest = hashlib.sha256(f"archsearch-hf-v1\0{spec}\0{column}\0".encode())
    for split, content in texts.items():
        digest.update(f"{split}\0{len(content)}\0".encode())
        digest.update(content)
    return Corpus(
        train=_as_tensor(texts["train"]),
        valid=_as_tensor(texts["valid"]),
        fingerprint=digest.hexdigest(),
        description=(
            f"Hugging Face dataset {spec}, column {column!r}: train ({len(texts['train'])} "
            f"bytes), {valid_split} ({len(texts['valid'])} bytes)"
        ),
        train_files=("train",),
        valid_files=(valid_split,),
        train_sizes=row_sizes(rows["train"]),
        valid_sizes=row_sizes(rows["valid"]),
    )


def row_sizes(rows: list[bytes]) -> tuple[int, ...]:
    """Document sizes of rows joined by newlines: each row owns the newline after it."""
    return tuple(len(row) + (index < len(rows) - 1) for index, row in enumerate(rows))


def list_text_files(root: Path) -> dict[str, bytes]:
    """Relative POSIX path -> content of every visible UTF-8 file under ``root``, sorted."""
    found: dict[str, bytes] = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for file in sorted(files):
            if file.startswith("."):
                continue
            full = Path(folder, file)
            if not full.is_file():
                continue
            content = full.read_bytes()
            try:
                content.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if content:
                found[full.relative_to(root).as_posix()] = content
    return dict(sorted(found.items()))


def split_files(names: list[str]) -> set[str]:
    """The validation files: the stable path hash decides, with at least one file on each side.

    With few files the hash may pick none; then the file with the smallest hash is held out.
    """
    valid = {name for name in names if is_validation(name)}
    order = sorted(names, key=_hash_rank)
    if not valid:
        valid = {order[0]}
    if len(valid) == len(names):
        valid.discard(order[-1])
    return valid


def _folder(root: Path) -> Corpus:
    contents = list_text_files(root)
    if not contents:
        raise InputError(f"no UTF-8 text files under {root}", key="data")
    if len(contents) == 1:
        (only,) = contents
        return _single_file(root / only)
    valid = split_files(list(contents))
    digest = hashlib.sha256(f"{_FORMAT}\0folder\0".encode())
    parts: dict[str, list[bytes]] = {"train": [], "valid": []}
    names: dict[str, list[str]] = {"train": [], "valid": []}
    for relative, content in contents.items():
        split = "valid" if relative in valid else "train"
        digest.update(f"{split}\0{relative}\0{len(content)}\0".encode())
        digest.update(content)
        parts[split].append(content)
        names[split].append(relative)
    sizes = {split: sum(map(len, chunks)) for split, chunks in parts.items()}
    return Corpus(
        train=_as_tensor(b"".join(parts["train"])),
        valid=_as_tensor(b"".join(parts["valid"])),
        fingerprint=digest.hexdigest(),
        description=(
            f"text files under {root}: {len(names['train'])} train files ({sizes['train']} "
            f"bytes), {len(names['valid'])} validation files ({sizes['valid']} bytes)"
        ),
        train_files=tuple(names["train"]),
        valid_files=tuple(names["valid"]),
        train_sizes=tuple(map(len, parts["train"])),
        valid_sizes=tuple(map(len, parts["valid"])),
    )


def _single_file(path: Path) -> Corpus:
    content = path.read_bytes()
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", key="data") from None
    cut = len(content) - max(1, round(SINGLE_FILE_VALID_FRACTION * len(content)))
    if cut < 1:
        raise InputError(f"{path} is too short to split into train and validation", key="data")
    digest = hashlib.sha256(f"{_FORMAT}\0file\0{len(content)}\0{cut}\0".encode())
    digest.update(content)
    return Corpus(
        train=_as_tensor(content[:cut]),
        valid=_as_tensor(content[cut:]),
        fingerprint=digest.hexdigest(),
        description=(
            f"text file {path}: first {cut} bytes train, last {len(content) - cut} validation"
        ),
        train_files=(path.name,),
        valid_files=(path.name,),
        train_sizes=paragraph_sizes(content[:cut]),
        valid_sizes=paragraph_sizes(content[cut:]),
    )


def _hash_rank(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def _as_tensor(content: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(content), dtype=torch.uint8)


def _streams(data: torch.Tensor, rows: int) -> torch.Tensor:
    """``data`` cut into ``rows`` equal contiguous streams, one per batch row: [rows, length]."""
    length = data.numel() // rows
    return data[: rows * length].view(rows, length)


def segment(streams: torch.Tensor, index: int, seq_len: int) -> Batch:
    """Inputs and next-byte targets of segment ``index``; wraps around at the end of the data.

    ``fresh`` is True where a segment does not continue the previous one (the first, and the
    first after a wrap), so recurrent state must start empty there.
    """
    per_stream = (streams.shape[1] - 1) // seq_len
    if per_stream < 1:
        raise ValueError(f"data too short for segments of {seq_len} tokens")
    start = (index % per_stream) * seq_len
    window = streams[:, start : start + seq_len + 1].long()
    return Batch(window[:, :-1], window[:, 1:], fresh=index % per_stream == 0, start=start)
