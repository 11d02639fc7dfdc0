"""The weights a search trial started from, for exports that carry weights.

The evaluator seeds torch with the recipe's seed right before ``build_model``; doing the same
here (on a private copy of the random generator) gives the model the trial was trained from.
archsearch keeps no trained weights: training the exported model is the user's next step.
"""

from __future__ import annotations

import optuna
from torch import nn

from archsearch.config import ArchConfig


def recipe_seed(study: optuna.Study) -> int:
    seed = study.user_attrs.get("evaluator", {}).get("seed", 0)
    return seed if isinstance(seed, int) else 0


def initial_model(config: ArchConfig, seed: int) -> nn.Module:
    from archsearch.models import build_model

    return build_model(config, seed=seed).eval()
