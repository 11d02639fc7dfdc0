"""Score a configuration by its inherited weights: validation bits per byte of the sub-network
the trained supernet holds, on the recipe's first ``score_tokens`` validation tokens.

The same fixed batches score every candidate, so differences between candidates are not
sampling noise of different text. A worker process loads a supernet once and keeps it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from archsearch.config import ArchConfig
from archsearch.evaluate.data import Batches, make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.train import check_compatible, validate
from archsearch.supernet.model import Supernet
from archsearch.supernet.store import load_supernet

_LOADED: dict[Path, Supernet] = {}
_BATCHES: dict[str, Batches] = {}


def scoring_recipe(recipe: Recipe) -> Recipe:
    """The recipe whose validation is the supernet score's: ``score_tokens`` of it."""
    assert recipe.supernet is not None
    return recipe.replace(eval_tokens=recipe.supernet.score_tokens)


def scoring_batches(recipe: Recipe) -> Batches:
    """The fixed validation batches every candidate is scored on (made once per process)."""
    scoring = scoring_recipe(recipe)
    key = repr(scoring.to_dict())
    if key not in _BATCHES:
        _BATCHES[key] = make_batches(scoring)
    return _BATCHES[key]


def training_batches(recipe: Recipe) -> Batches:
    """The recipe's training batches (made once per process), for fine-tuning candidates."""
    key = "train:" + repr(recipe.training.to_dict())
    if key not in _BATCHES:
        _BATCHES[key] = make_batches(recipe.training)
    return _BATCHES[key]


def loaded_supernet(path: Path) -> Supernet:
    """The supernet saved at ``path``, loaded once per process."""
    path = Path(path)
    if path not in _LOADED:
        _LOADED[path] = load_supernet(path)[0]
    return _LOADED[path]


def inherited_bpb(supernet: Supernet, config: ArchConfig, recipe: Recipe) -> float:
    """Validation bpb of ``config``'s sub-network with the supernet's weights."""
    check_compatible(config, recipe)
    model = supernet.extract(config)
    return validate(model, scoring_batches(recipe), scoring_recipe(recipe))["val_bpb"]


def score_from_file(path: Path, config: ArchConfig, recipe: Recipe, threads: int = 1) -> float:
    """``inherited_bpb`` with the supernet saved at ``path`` (loaded once per process)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return inherited_bpb(loaded_supernet(path), config, recipe)
    finally:
        torch.set_num_threads(previous)
