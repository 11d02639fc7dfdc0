"""Where archsearch keeps what it computed once per machine (latency predictors, tokenizers).

``~/.cache/archsearch`` unless ``ARCHSEARCH_CACHE_DIR`` names another folder (the tests point
it at a temporary one, so they never touch a user's cache).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ARCHSEARCH_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder (not created here: each user of it creates its own subfolder)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "archsearch"
