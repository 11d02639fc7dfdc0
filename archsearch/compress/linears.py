"""Which nn.Linear layers compression touches, by module name.

Quantization swaps a module for ``torch.ao``'s dynamic int8 Linear, whose ``weight`` is a
method: a module that reads a child's ``.weight`` directly (the sparse FFN picks rows of it)
names that child in ``reads_weights`` and the child stays float. A Linear whose weight is tied
to another module (the output layer tied to the embedding table) stays float too: quantizing it
would store the table twice. Pruning masks the same layers' weights, plus the directly-read
ones (masking works whatever reads the weight).
"""

from __future__ import annotations

from torch import nn


def _tied(model: nn.Module) -> set[str]:
    """Names of Linear modules whose weight another module also holds."""
    owners: dict[int, set[int]] = {}
    for module in model.modules():
        for parameter in module.parameters(recurse=False):
            owners.setdefault(id(parameter), set()).add(id(module))
    return {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and len(owners[id(module.weight)]) > 1
    }


def _read_directly(model: nn.Module) -> set[str]:
    out = set()
    for name, module in model.named_modules():
        for child in getattr(module, "reads_weights", ()):
            out.add(f"{name}.{child}" if name else child)
    return out


def prunable(model: nn.Module) -> list[str]:
    """Every nn.Linear (each shared module once) except those tied to another module."""
    tied = _tied(model)
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name not in tied
    ]


def quantizable(model: nn.Module) -> list[str]:
    """The prunable linears that forward calls as modules (not read by ``.weight``)."""
    direct = _read_directly(model)
    return [name for name in prunable(model) if name not in direct]
