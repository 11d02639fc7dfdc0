"""Byte-level BPE for ``tokenizer: bpe`` recipes, trained locally on the training split.

Why byte-level: every byte sequence (invalid UTF-8 included) must encode and decode back
unchanged, so scores stay in bits per BYTE and compare with the bytes tokenizer. Each byte is
mapped to the character with the same code point (latin-1), so the 256 base symbols are
exactly the 256 bytes, with ids 0..255 equal to the byte values; merges are learned on top by
the Hugging Face ``tokenizers`` BPE trainer (an optional extra, imported only when used).

Why deterministic: the tokenizer decides which data a result was measured on. It is trained on
the recipe's training text only (never on validation), with a fixed pre-tokenizer and trainer
settings; the trainer breaks ties between equally frequent pairs by pair id, so the same text
and ``vocab_size`` give the same merges on every run and machine. The trained tokenizer is
cached as ``tokenizers``' own JSON under the archsearch cache folder, keyed by the corpus
fingerprint, ``vocab_size`` and ``FORMAT``, written atomically (two workers may train it at
once; both write the same file). Encoded token tensors are also kept in-process, because a
worker trains many candidates on the same data.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from archsearch.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from archsearch.evaluate.corpus import Corpus

FORMAT = "archsearch-bpe-v1"  # bump when training or pre-tokenization changes: new cache keys
# GPT-2's pre-tokenization, on the latin-1 view of the bytes: words (with one leading space),
# numbers, runs of punctuation, and runs of whitespace (indentation becomes one piece).
# Merges never cross these pieces.
PRE_TOKENIZE = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
MIN_PAIR_COUNT = 2  # a pair seen once is not a pattern worth a vocabulary entry
BYTES = 256
# Where text may be cut into independently encoded chunks without changing the tokens: between
# a newline that follows a printable ASCII character and a printable ASCII character. No
# pre-token spans such a point (see ``PRE_TOKENIZE``), so chunks encode to the same ids as the
# whole text, and chunks can be encoded in parallel.
_CUT = re.compile(r"(?<=[!-~]\n)(?=[!-~])")
CHUNK_CHARS = 1 << 16

_ENCODED: dict[tuple[str, int], TokenStreams] = {}


def _tokenizers() -> Any:
    """The optional ``tokenizers`` package, or an InputError that says how to get it."""
    try:
        import tokenizers
    except ImportError:
        raise InputError(
            "tokenizer: bpe needs the optional Hugging Face 'tokenizers' package, which is not "
            "installed: pip install 'archsearch[bpe]' (or use tokenizer: bytes)",
            key="tokenizer",
        ) from None
    return tokenizers


class ByteBPE:
    """A trained byte-level BPE: bytes -> ids -> the same bytes, for any bytes."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        size = tokenizer.get_vocab_size()
        self.pieces: tuple[bytes, ...] = tuple(
            tokenizer.id_to_token(i).encode("latin-1") for i in range(size)
        )
        if size < BYTES or any(self.pieces[i] != bytes([i]) for i in range(BYTES)):
            raise ValueError("not an archsearch byte-level BPE: ids 0..255 must be the bytes")

    @property
    def vocab_size(self) -> int:
        """Symbols learned (at most the recipe's vocab_size; fewer if the text ran out of
        pairs seen at least ``MIN_PAIR_COUNT`` times)."""
        return len(self.pieces)

    def byte_lengths(self) -> np.ndarray:
        """``[vocab_size]`` int64: how many bytes each token id decodes to."""
        return np.array([len(piece) for piece in self.pieces], dtype=np.int64)

    def encode(self, data: bytes) -> np.ndarray:
        """Token ids of ``data`` as a 1-D int32 array (chunks encoded in parallel)."""
        chunks = _chunks(data.decode("latin-1"))
        # encode_batch_fast (tokenizers >= 0.20) skips the character offsets we do not need
        encoded = self._tokenizer.encode_batch_fast(chunks, add_special_tokens=False)
        parts = [np.asarray(item.ids, dtype=np.int32) for item in encoded]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray | torch.Tensor) -> bytes:
        """The bytes a sequence of ids stands for (the exact inverse of ``encode``)."""
        if hasattr(ids, "tolist"):  # an array or a tensor
            ids = ids.tolist()
        return b"".join(self.pieces[i] for i in ids)

    def to_json(self) -> str:
        """``tokenizers``' own JSON form (what the cache stores)."""
        return self._tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str) -> ByteBPE:
        """Read ``to_json``'s output with ``tokenizers``' JSON loader (no pickle)."""
        return cls(_tokenizers().Tokenizer.from_str(text))

    def digest(self) -> str:
        """What decides the ids: pre-tokenization, vocabulary and merges (not cosmetic JSON)."""
        spec = json.loads(self.to_json())
        decisive = {
            "pre_tokenizer": spec.get("pre_tokenizer"),
            "normalizer": spec.get("normalizer"),
            "vocab": [piece.hex() for piece in self.pieces],
            "merges": spec["model"]["merges"],
        }
        text = json.dumps(decisive, sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def train_bpe(text: bytes, vocab_size: int) -> ByteBPE:
    """Learn a byte-level BPE of at most ``vocab_size`` symbols from ``text`` (deterministic)."""
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.BPE())
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Split(tk.Regex(PRE_TOKENIZE), behavior="isolated")
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=MIN_PAIR_COUNT,
        initial_alphabet=[chr(byte) for byte in range(BYTES)],
        show_progress=False,
    )
    tokenizer.train_from_iterator(_chunks(text.decode("latin-1")), trainer=trainer)
    return ByteBPE(tokenizer)


def cache_path(corpus_fingerprint: str, vocab_size: int) -> Path:
    """Where the tokenizer for this corpus and vocabulary is cached (JSON)."""
    from archsearch.cache import cache_root

    key = hashlib.sha256(f"{FORMAT}\0{corpus_fingerprint}\0{vocab_size}".encode()).hexdigest()
    return cache_root() / "tokenizers" / f"bpe{vocab_size}-{key[:32]}.json"


def load_bpe(corpus: Corpus, vocab_size: int) -> ByteBPE:
    """The tokenizer for ``corpus``'s TRAINING split: from the disk cache, else trained and
    cached. A cache file that cannot be read is trained again and replaced."""
    _tokenizers()  # a missing package is reported before any work
    path = cache_path(corpus.fingerprint, vocab_size)
    try:
        return ByteBPE.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except Exception as exc:  # truncated or edited by hand: rebuild it
        warnings.warn(f"retraining the BPE tokenizer, cannot read {path}: {exc}", stacklevel=2)
    bpe = train_bpe(corpus.train.numpy().tobytes(), vocab_size)
    _write_atomically(path, bpe.to_json())
    return bpe


@dataclass(frozen=True, eq=False)
class TokenStreams:
    """A corpus as BPE ids: what ``StreamBatches`` lays out for a ``tokenizer: bpe`` recipe.

    ``train`` / ``valid`` are 1-D int32 tensors shared through a cache (read only);
    ``byte_lengths`` gives each id's length in bytes, for scoring in bits per byte.
    """

    train: torch.Tensor
    valid: torch.Tensor
    byte_lengths: torch.Tensor
    fingerprint: str
    description: str
    bpe: ByteBPE


def encode_corpus(corpus: Corpus, vocab_size: int) -> TokenStreams:
    """``corpus`` as token streams under its BPE of ``vocab_size``; cached per process."""
    import torch  # only here: the tokenizer itself works without torch

    key = (corpus.fingerprint, vocab_size)
    if key not in _ENCODED:
        bpe = load_bpe(corpus, vocab_size)
        train = torch.from_numpy(bpe.encode(corpus.train.numpy().tobytes()))
        valid = torch.from_numpy(bpe.encode(corpus.valid.numpy().tobytes()))
        fingerprint = hashlib.sha256(
            f"{FORMAT}\0{corpus.fingerprint}\0{vocab_size}\0{bpe.digest()}".encode()
        ).hexdigest()
        ratio = corpus.valid.numel() / max(1, valid.numel())
        _ENCODED[key] = TokenStreams(
            train=train,
            valid=valid,
            byte_lengths=torch.from_numpy(bpe.byte_lengths()),
            fingerprint=fingerprint,
            description=(
                f"{corpus.description}; byte-level BPE of {vocab_size} symbols "
                f"({bpe.vocab_size} learned, trained on the train split): {train.numel()} train "
                f"and {valid.numel()} validation tokens, {ratio:.2f} bytes per validation token"
            ),
            bpe=bpe,
        )
    return _ENCODED[key]


def _chunks(text: str) -> list[str]:
    """``text`` cut at safe points (``_CUT``) into pieces of about ``CHUNK_CHARS``."""
    pieces, start = [], 0
    for match in _CUT.finditer(text, CHUNK_CHARS):
        if match.start() - start >= CHUNK_CHARS:
            pieces.append(text[start : match.start()])
            start = match.start()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _write_atomically(path: Path, text: str) -> None:
    """Temporary file beside ``path``, then rename: readers never see a partial file. A cache
    that cannot be written is only a lost speed-up, so that is a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        warnings.warn(f"cannot cache the BPE tokenizer at {path}: {exc}", stacklevel=3)
