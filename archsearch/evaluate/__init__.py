"""How a candidate is scored: evaluator recipes, their data, and the brief training run.

``CandidateFailed`` lives here, importable without torch, because the search driver catches it
around every evaluator. The rest loads on first use, so reading a recipe never imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "CandidateFailed",
    "Corpus",
    "EvalResult",
    "Recipe",
    "evaluate",
    "load_corpus",
    "load_recipe",
]


class CandidateFailed(Exception):
    """A candidate that could not be scored (e.g. its loss became NaN): a result, not a bug.

    The search driver records the trial as failed with ``reason`` and moves on.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


if TYPE_CHECKING:  # pragma: no cover
    from archsearch.evaluate.corpus import Corpus, load_corpus
    from archsearch.evaluate.recipe import Recipe, load_recipe
    from archsearch.evaluate.train import EvalResult, evaluate

_LAZY = {
    "Corpus": "archsearch.evaluate.corpus",
    "load_corpus": "archsearch.evaluate.corpus",
    "Recipe": "archsearch.evaluate.recipe",
    "load_recipe": "archsearch.evaluate.recipe",
    "EvalResult": "archsearch.evaluate.train",
    "evaluate": "archsearch.evaluate.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'archsearch.evaluate' has no attribute {name!r}")
