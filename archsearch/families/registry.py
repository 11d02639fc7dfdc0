"""The ordered list of family modules, loaded once, and lookups by name.

Order matters only for messages and listings (``'x' is not one of full, local, ...``); a new
family appends its module name here.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from archsearch.families.base import FamilySpec, MemorySpec

FAMILY_MODULES = (
    "full",
    "local",
    "linformer",
    "performer",
    "lsh",
    "lsra",
    "sparsefinder",
    "sparse_qkv",
    "dense",
    "switch_moe",
    "sparse",
    "glu",
)
MEMORY_MODULE = "memory"
FAMILY_KEYS = ("attention", "ffn")  # the per-layer keys whose value names a registered family


@lru_cache(maxsize=1)
def _tables() -> dict[str, dict[str, FamilySpec]]:
    tables: dict[str, dict[str, FamilySpec]] = {kind: {} for kind in FAMILY_KEYS}
    settings: dict[str, str] = {}
    for module_name in FAMILY_MODULES:
        spec = importlib.import_module(f"archsearch.families.{module_name}").SPEC
        if spec.kind not in tables:
            raise ValueError(f"family '{spec.name}' has unknown kind {spec.kind!r}")
        if spec.name in tables[spec.kind]:
            raise ValueError(f"two {spec.kind} families are named '{spec.name}'")
        for setting in spec.settings:
            if setting.name in settings:
                raise ValueError(
                    f"setting '{setting.name}' of '{spec.name}' is already "
                    f"'{settings[setting.name]}''s"
                )
            settings[setting.name] = spec.name
        tables[spec.kind][spec.name] = spec
    return tables


@lru_cache(maxsize=1)
def _memories() -> dict[str, MemorySpec]:
    module = importlib.import_module(f"archsearch.families.{MEMORY_MODULE}")
    return {spec.name: spec for spec in module.SPECS}


def specs(kind: str) -> dict[str, FamilySpec]:
    """Every registered family of ``kind`` ("attention" or "ffn"), in registration order."""
    return dict(_tables()[kind])


def all_specs() -> list[FamilySpec]:
    """Every attention and feed-forward family, attention first."""
    return [*_tables()["attention"].values(), *_tables()["ffn"].values()]


def names(kind: str) -> tuple[str, ...]:
    """Family names of ``kind`` ("attention", "ffn" or "memory"), in registration order."""
    if kind == "memory":
        return tuple(_memories())
    return tuple(_tables()[kind])


def attention_spec(name: str) -> FamilySpec:
    table = _tables()["attention"]
    if name not in table:
        raise NotImplementedError(f"attention '{name}' has no implementation registered")
    return table[name]


def ffn_spec(name: str) -> FamilySpec:
    table = _tables()["ffn"]
    if name not in table:
        raise NotImplementedError(f"ffn '{name}' has no implementation registered")
    return table[name]


def memory_spec(name: str) -> MemorySpec:
    table = _memories()
    if name not in table:
        raise NotImplementedError(f"memory '{name}' has no implementation registered")
    return table[name]


def memory_specs() -> dict[str, MemorySpec]:
    return dict(_memories())
