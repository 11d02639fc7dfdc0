"""What every model returns, so trainers never special-case a family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class ModelOutput:
    """Logits, an auxiliary loss to add to the task loss, and the recurrent state to carry.

    ``aux_loss`` is a scalar tensor (zero for families without one, e.g. non-MoE models);
    ``state`` is None for models without memory and otherwise is passed back as ``state=`` on
    the next consecutive segment.
    """

    logits: torch.Tensor
    aux_loss: torch.Tensor
    state: Any = None
