"""``--format pytorch``: the config YAML (which ``build_model`` rebuilds) plus starting weights.

Use it in any training loop::

    config = archsearch.ArchConfig.from_yaml("<stem>.yaml")
    model = archsearch.build_model(config)
    model.load_state_dict(torch.load("<stem>.pt", weights_only=True))  # optional

``model(tokens)`` returns ``ModelOutput(logits, aux_loss, state)``: add ``aux_loss`` to the
task loss (mixture-of-experts balance; zero otherwise) and pass ``state`` back for models with
recurrent memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from archsearch.config import ArchConfig
from archsearch.export.config_file import write_yaml
from archsearch.export.weights import initial_model


def write_pytorch(
    config: ArchConfig, prov: dict[str, Any], folder: Path, stem: str, seed: int
) -> list[Path]:
    config_path = write_yaml(config, prov, folder / f"{stem}.yaml")
    weights_path = folder / f"{stem}.pt"
    torch.save(initial_model(config, seed).state_dict(), weights_path)
    return [config_path, weights_path]
