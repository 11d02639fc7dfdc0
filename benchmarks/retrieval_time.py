"""Time RETRO's datastore: building it from the training split, and retrieval per chunk.

Run: .venv/bin/python benchmarks/retrieval_time.py [--chunks 16 32 64] [--k 2]

The default corpus's training split (python_stdlib), one thread. For each chunk size: chunks
stored, seconds to build (frozen keys, and the faiss index when faiss is installed), and
milliseconds per retrieved chunk for a validation batch of 4 x 128 tokens (query keys, the
exact top-k search, gathering the neighbour tokens), with faiss and with the torch brute force.
The search is exact either way, so it grows linearly with the store.
"""

from __future__ import annotations

import argparse
import time

import torch

from archsearch.evaluate.data import load_text
from archsearch.evaluate.retrieval import Datastore, time_per_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--k", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = load_text("python_stdlib")
    inputs = corpus.valid[: 4 * 128].view(4, 128).long()
    print(f"training split: {corpus.train.numel()} tokens; queries: 4 x 128 validation tokens")
    print("(one thread, on a machine shared with other jobs: timings vary between runs)")
    print(
        f"{'chunk':>5} {'stored':>8} {'build s':>8} {'faiss ms/chunk':>15} {'torch ms/chunk':>15}"
    )
    for chunk in args.chunks:
        started = time.perf_counter()
        with_faiss = Datastore.build(corpus.train, chunk, 256)
        build = time.perf_counter() - started
        brute = Datastore.build(corpus.train, chunk, 256, use_faiss=False)
        fast = (
            f"{1000 * time_per_chunk(with_faiss, inputs, args.k):>15.3f}"
            if with_faiss.index is not None
            else f"{'(no faiss)':>15}"
        )
        slow = 1000 * time_per_chunk(brute, inputs, args.k)
        print(f"{chunk:>5} {with_faiss.size:>8} {build:>8.2f} {fast} {slow:>15.3f}")


if __name__ == "__main__":
    main()
