"""De-duplication of training documents: ``dedup: exact`` or ``near`` in a recipe.

Repeated training text wastes a brief training budget, and training text that repeats a
validation document makes validation loss look better than it is (contamination). Both are
removed from the TRAINING split before training; the validation split is never touched, so every
candidate is scored on the same validation bytes whatever the mode.

- ``exact``: two documents are duplicates when they are equal after whitespace normalisation:
  every run of ASCII whitespace (space, tab, newline, carriage return, vertical tab, form feed)
  becomes one space and leading / trailing whitespace is removed (``b" ".join(doc.split())``).
  Re-indented or re-wrapped copies are therefore duplicates; a change of case is not.
- ``near``: ``exact`` plus documents whose sets of word 5-gram shingles (words of the
  normalised text) have a Jaccard similarity of at least ``NEAR_THRESHOLD`` = 0.8. Candidate
  pairs come from MinHash signatures (``PERMUTATIONS`` = 120) split into LSH bands (20 bands of
  6 rows: a pair at Jaccard 0.8 becomes a candidate with probability 0.998, one at 0.5 with
  0.27), and each candidate is confirmed on the exact Jaccard of the two shingle sets, so the
  threshold means what it says and MinHash noise decides nothing. 0.8 on word 5-grams is the
  usual setting for near-duplicate web and code documents (e.g. Lee et al. 2022 use 0.8 on
  5-grams): a file with a few lines changed stays above it, two files that share only a licence
  header or boilerplate imports fall well below it. Documents of fewer than 5 words have one
  shingle (all their words), so for them ``near`` reduces to ``exact``.

Which copy is kept: documents are visited in corpus order (sorted relative paths for file
corpora, position for paragraphs and rows); validation documents are all indexed first and
always kept; a training document is dropped when it duplicates a validation document or an
earlier training document that was KEPT (a chain A~B~C with A not~C keeps A and C).

Every hash is ``hashlib`` (BLAKE2b) or fixed-width ``numpy`` integer arithmetic, never Python's
per-process salted ``hash()``, so the same corpus is de-duplicated the same way in every process
on every machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from archsearch.evaluate.corpus import Corpus

MODES = ("none", "exact", "near")
SHINGLE_WORDS = 5
NEAR_THRESHOLD = 0.8
BANDS, ROWS = 20, 6
PERMUTATIONS = BANDS * ROWS
# Bump when anything above or below changes the documents kept: it goes into the fingerprint.
FORMAT = f"archsearch-dedup-v1 words={SHINGLE_WORDS} jaccard={NEAR_THRESHOLD} lsh={BANDS}x{ROWS}"
_CHUNK = 4096  # shingles hashed at once: bounds the [chunk, PERMUTATIONS] scratch array


@dataclass(frozen=True)
class Duplicate:
    """Training document ``index`` repeats document ``of`` of split ``of_split``.

    ``similarity`` is 1.0 for an exact duplicate, else the Jaccard similarity of the shingles.
    """

    index: int
    of_split: str  # "train" or "valid"
    of: int
    similarity: float


def normalise(document: bytes) -> bytes:
    """Runs of ASCII whitespace become one space; no leading or trailing whitespace."""
    return b" ".join(document.split())


def _constants(label: str, count: int) -> np.ndarray:
    """``count`` fixed odd 64-bit constants derived from ``label`` (the same everywhere)."""
    out = np.empty(count, dtype=np.uint64)
    for i in range(count):
        digest = hashlib.blake2b(f"{FORMAT}\0{label}\0{i}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") | 1
    return out


_MIX = _constants("shingle", SHINGLE_WORDS)
_MULTIPLY = _constants("minhash-a", PERMUTATIONS)
_ADD = _constants("minhash-b", PERMUTATIONS)


class _WordHashes:
    """Stable 64-bit hashes of words, memoised (a corpus repeats its words many times)."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def __call__(self, words: list[bytes]) -> np.ndarray:
        seen = self._seen
        out = np.empty(len(words), dtype=np.uint64)
        for i, word in enumerate(words):
            value = seen.get(word)
            if value is None:
                digest = hashlib.blake2b(word, digest_size=8).digest()
                value = seen[word] = int.from_bytes(digest, "little")
            out[i] = value
        return out


def shingles(normalised: bytes, words: _WordHashes | None = None) -> np.ndarray:
    """Sorted unique 64-bit hashes of the word 5-grams of a normalised document.

    A document of fewer than 5 words (but at least one) is one shingle; no words, no shingles.
    """
    hashes = (words or _WordHashes())(normalised.split())
    n = len(hashes)
    if n == 0:
        return hashes
    width = min(SHINGLE_WORDS, n)
    count = n - width + 1
    combined = np.zeros(count, dtype=np.uint64)
    for k in range(width):  # order-sensitive mix: sum of word_k * odd constant_k (mod 2^64)
        combined += hashes[k : k + count] * _MIX[k]
    return np.unique(combined)


def minhash(shingle_set: np.ndarray) -> np.ndarray:
    """MinHash signature: for each of the universal hashes a*x+b (mod 2^64), the minimum."""
    signature = np.full(PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
    for start in range(0, len(shingle_set), _CHUNK):
        chunk = shingle_set[start : start + _CHUNK, None]
        np.minimum(signature, (chunk * _MULTIPLY + _ADD).min(axis=0), out=signature)
    return signature


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


_Match = tuple[str, int, float]  # split, position and similarity of the kept document


@dataclass(frozen=True)
class _Entry:
    """What indexing a document needs: its exact key, shingles and LSH band keys (near only)."""

    key: bytes
    shingles: np.ndarray | None
    bands: list[bytes] | None


class _Index:
    """The documents kept so far, searchable for an exact or a near duplicate."""

    def __init__(self, near: bool):
        self.near = near
        self.exact: dict[bytes, tuple[str, int]] = {}
        self.bands: list[dict[bytes, list[int]]] = [{} for _ in range(BANDS)]
        self.owners: list[tuple[str, int]] = []
        self.sets: list[np.ndarray] = []
        self.words = _WordHashes()

    def match(self, document: bytes) -> tuple[_Match | None, _Entry]:
        """The kept document this one repeats (None if none), and what adding it needs."""
        normalised = normalise(document)
        key = hashlib.blake2b(normalised, digest_size=16).digest()
        if key in self.exact:
            return (*self.exact[key], 1.0), _Entry(key, None, None)
        if not self.near:
            return None, _Entry(key, None, None)
        shingle_set = shingles(normalised, self.words)
        if len(shingle_set) == 0:
            return None, _Entry(key, shingle_set, None)
        signature = minhash(shingle_set)
        bands = [signature[b * ROWS : (b + 1) * ROWS].tobytes() for b in range(BANDS)]
        candidates = sorted(
            {c for band, part in zip(self.bands, bands, strict=True) for c in band.get(part, ())}
        )
        best: tuple[float, int] | None = None
        for candidate in candidates:  # in the order they were kept: ties go to the earliest
            similarity = jaccard(shingle_set, self.sets[candidate])
            if similarity >= NEAR_THRESHOLD and (best is None or similarity > best[0]):
                best = (similarity, candidate)
        if best is not None:
            return (*self.owners[best[1]], best[0]), _Entry(key, shingle_set, bands)
        return None, _Entry(key, shingle_set, bands)

    def add(self, entry: _Entry, owner: tuple[str, int]) -> None:
        self.exact.setdefault(entry.key, owner)
        if entry.bands is None or entry.shingles is None:
            return
        position = len(self.owners)
        self.owners.append(owner)
        self.sets.append(entry.shingles)
        for band, part in zip(self.bands, entry.bands, strict=True):
            band.setdefault(part, []).append(position)


def find_duplicates(train: Sequence[bytes], valid: Sequence[bytes], mode: str) -> list[Duplicate]:
    """The training documents to drop under ``mode``, in order (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown dedup mode {mode!r} (known: {', '.join(MODES)})")
    if mode == "none":
        return []
    index = _Index(near=mode == "near")
    for position, document in enumerate(valid):
        _, entry = index.match(document)
        index.add(entry, ("valid", position))
    found = []
    for position, document in enumerate(train):
        match, entry = index.match(document)
        if match is None:
            index.add(entry, ("train", position))
        else:
            found.append(Duplicate(position, *match))
    return found


def fingerprint(base: str, mode: str) -> str:
    """The fingerprint of a corpus after dedup: the base corpus's, unchanged for ``none``."""
    if mode == "none":
        return base
    return hashlib.sha256(f"{FORMAT}\0{mode}\0{base}".encode()).hexdigest()


def deduplicate(corpus: Corpus, mode: str) -> Corpus:
    """``corpus`` with its duplicate training documents dropped; validation left as it is.

    The result's fingerprint differs from the input's for every mode but ``none`` (which returns
    ``corpus`` itself), even when nothing was dropped: it names a different measurement.
    """
    if mode == "none":
        return corpus
    train = corpus.documents("train")
    found = find_duplicates(train, corpus.documents("valid"), mode)
    dropped = {duplicate.index for duplicate in found}
    kept = [document for position, document in enumerate(train) if position not in dropped]
    names = corpus.train_files
    if len(names) == len(train):  # one document per file: the file list follows
        names = tuple(name for position, name in enumerate(names) if position not in dropped)
    contaminated = sum(duplicate.of_split == "valid" for duplicate in found)
    dropped_bytes = sum(len(train[position]) for position in dropped)
    return Corpus(
        train=torch.frombuffer(bytearray(b"".join(kept)), dtype=torch.uint8),
        valid=corpus.valid,
        fingerprint=fingerprint(corpus.fingerprint, mode),
        description=(
            f"{corpus.description}; dedup {mode}: dropped {len(found)} of {len(train)} training "
            f"documents ({dropped_bytes} bytes; {contaminated} of them repeat validation text)"
        ),
        train_files=names,
        valid_files=corpus.valid_files,
        train_sizes=tuple(map(len, kept)),
        valid_sizes=corpus.valid_sizes,
    )
