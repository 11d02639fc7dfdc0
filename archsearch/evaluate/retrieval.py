"""RETRO's datastore: chunks of the TRAINING split, a frozen embedding of each, and the
nearest-neighbour search that hands a retrieving model its neighbours per batch.

- Chunks: the training tokens (the streams the trainer reads, in their original order) cut at
  every multiple of m; a neighbour is a chunk and its continuation, 2m tokens.
- Embedding (frozen, independent of the model being searched): the mean over the chunk of a
  fixed random Gaussian vector per token id (``KEY_DIM`` wide, seed ``KEY_SEED``), normalised;
  similarity is the inner product (cosine). A random projection of the chunk's token counts,
  so chunks sharing many tokens are near; it needs no trained encoder (RETRO uses a frozen BERT).
- Search: exact inner-product top-k, with faiss (``IndexFlatIP``) when it is installed
  (``pip install archsearch[retrieval]``) and by a torch matmul otherwise; the two agree.
- Only the training split is ever stored: validation text cannot be retrieved. While training,
  neighbours that overlap the window being trained on (its own text or what follows it) are
  skipped, so a neighbour never holds the tokens the model is asked to predict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from archsearch.errors import InputError

KEY_DIM = 32
KEY_SEED = 1234
_STORES: dict[tuple[str, int, int], Datastore] = {}


def chunk_keys(chunks: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[n, m]`` token ids -> ``[n, KEY_DIM]`` unit vectors (the frozen embedding)."""
    generator = torch.Generator().manual_seed(KEY_SEED)
    table = torch.randn(vocab_size, KEY_DIM, generator=generator)
    keys = torch.cat(
        [F.embedding_bag(part.long(), table, mode="mean") for part in chunks.split(65536)]
    )
    return F.normalize(keys, dim=1)


@dataclass
class Datastore:
    """Chunk keys over a training token sequence, and the neighbours they point to."""

    tokens: torch.Tensor  # the training split, 1-D, in order
    chunk: int
    keys: torch.Tensor  # [chunks, KEY_DIM]
    vocab_size: int
    index: Any = None  # a faiss index, when faiss is used

    @classmethod
    def build(cls, tokens: torch.Tensor, chunk: int, vocab_size: int, *, use_faiss: bool = True):
        """Every chunk starting at a multiple of ``chunk`` that has a full continuation."""
        count = (tokens.numel() - 2 * chunk) // chunk + 1
        if count < 1:
            raise InputError(
                f"the training split is too short for neighbours of {2 * chunk} tokens",
                key="data",
            )
        starts = tokens[: count * chunk].view(count, chunk)
        store = cls(tokens, chunk, chunk_keys(starts, vocab_size), vocab_size)
        if use_faiss:
            store.index = _faiss_index(store.keys)
        return store

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    def search(self, queries: torch.Tensor, k: int) -> torch.Tensor:
        """``[q, KEY_DIM]`` -> ``[q, k]`` indices of the most similar chunks, best first."""
        k = min(k, self.size)
        if self.index is not None:
            _, found = self.index.search(queries.numpy(), k)
            return torch.from_numpy(found).long()
        return brute_force(self.keys, queries, k)

    def neighbour_starts(
        self, inputs: torch.Tensor, k: int, windows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, T]`` inputs -> ``[B, R, k]`` positions in the training sequence of the
        neighbours of each chunk that has a successor, best first. ``windows`` ([B, 2]: start,
        end) marks the text a training row was cut from; chunks overlapping it are skipped."""
        b, t = inputs.shape
        m = self.chunk
        r = max(0, -(-t // m) - 1)
        if r == 0:
            return inputs.new_zeros(b, 0, k, dtype=torch.long)
        spare = 0 if windows is None else (t + 1) // m + 4  # chunks a window can overlap
        if self.size < k + spare:
            raise InputError(
                f"the datastore holds {self.size} chunks, too few for {k} neighbours",
                key="retrieval_k",
            )
        queries = chunk_keys(inputs[:, : r * m].reshape(b * r, m), self.vocab_size)
        starts = self.search(queries, k + spare).view(b, r, -1) * m
        if windows is not None:
            window = windows[:, None, None, :]
            overlaps = (starts < window[..., 1]) & (starts + 2 * m > window[..., 0])
            # stable sort: the chunks kept stay best first, the overlapping ones go last
            order = torch.sort(overlaps.int(), dim=-1, stable=True).indices
            starts = torch.gather(starts, -1, order)
        return starts[..., :k]

    def neighbours(
        self, inputs: torch.Tensor, k: int, windows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, R, k, 2m]`` neighbour tokens: each found chunk and its continuation."""
        starts = self.neighbour_starts(inputs, k, windows)
        offsets = torch.arange(2 * self.chunk)
        return self.tokens[starts[..., None] + offsets].long()


def brute_force(keys: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Exact top-k by inner product, in blocks of queries (memory stays small)."""
    parts = [torch.topk(part @ keys.T, k, dim=1).indices for part in queries.split(256)]
    return torch.cat(parts) if parts else queries.new_zeros(0, k, dtype=torch.long)


def _faiss_index(keys: torch.Tensor) -> Any:
    try:
        import faiss
    except ImportError:
        return None
    index = faiss.IndexFlatIP(keys.shape[1])
    index.add(keys.numpy())
    return index


def datastore_for(batches: Any, chunk: int, vocab_size: int) -> Datastore:
    """The datastore of a text source's training split, cached per process."""
    streams = getattr(batches, "train_streams", None)
    if streams is None:
        raise InputError(
            "retrieval needs text data whose training split can be stored (not a synthetic task)",
            key="data",
        )
    key = (batches.fingerprint, chunk, vocab_size)
    if key not in _STORES:
        _STORES.clear()  # one store at a time: a large corpus takes tens of MB
        _STORES[key] = Datastore.build(streams.reshape(-1), chunk, vocab_size)
    return _STORES[key]


def training_windows(batches: Any, start: int, rows: int, length: int) -> torch.Tensor:
    """``[rows, 2]``: where each row's window (``length`` + 1 tokens from column ``start``)
    lies in the flattened training sequence."""
    columns = batches.train_streams.shape[1]
    first = torch.arange(rows) * columns + start
    return torch.stack((first, first + length + 1), 1)


def time_per_chunk(store: Datastore, inputs: torch.Tensor, k: int, repeats: int = 3) -> float:
    """Seconds per retrieved chunk (embedding the queries, the search, gathering tokens)."""
    chunks = inputs.shape[0] * max(1, -(-inputs.shape[1] // store.chunk) - 1)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        store.neighbours(inputs, k)
        best = min(best, time.perf_counter() - started)
    return best / chunks
