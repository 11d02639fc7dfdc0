"""Family specs: one torch-free description per attention, feed-forward and memory family.

Costs, memory estimates, configuration checks, export, calibration, proxies, the supernet and
the tests all read these; the PyTorch modules are resolved by name when a model is built.
Importing this package never imports torch.
"""

from __future__ import annotations

from archsearch.families.base import KINDS, BlockContext, FamilySpec, MemorySpec, resolve
from archsearch.families.registry import (
    all_specs,
    attention_spec,
    ffn_spec,
    memory_spec,
    memory_specs,
    names,
    specs,
)
from archsearch.families.settings import Setting

__all__ = [
    "KINDS",
    "BlockContext",
    "FamilySpec",
    "MemorySpec",
    "Setting",
    "all_specs",
    "attention_spec",
    "ffn_spec",
    "memory_spec",
    "memory_specs",
    "names",
    "resolve",
    "specs",
]
