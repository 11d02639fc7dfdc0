"""One way to seed torch's random stream: a private, seeded copy of the global generator.

Draws inside ``seeded(seed)`` repeat on every call and leave the caller's stream as it was.
``build_model(config, seed=...)`` is ``build_model(config)`` inside it; a training run opens it
once, builds its model first (so it starts from ``build_model(config, seed=...)``'s weights) and
trains in the same stream (dropout, random features and routing noise draw from it after).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Torch's global CPU generator seeded with ``seed`` inside, restored on leaving."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
