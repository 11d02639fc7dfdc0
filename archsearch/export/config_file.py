"""YAML and JSON exports: ``{"arch": <ArchConfig flat form>, "provenance": {...}}``.

``ArchConfig.from_yaml`` reads such a file directly (it takes the ``arch`` key when present), so
``archsearch measure`` and ``archsearch.build_model`` accept the export as it is. JSON is a subset
of YAML: the JSON file reads back the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from archsearch.config import ArchConfig
from archsearch.export.provenance import headline


def document(config: ArchConfig, prov: dict[str, Any]) -> dict[str, Any]:
    return {"arch": config.to_dict(), "provenance": prov}


def write_yaml(config: ArchConfig, prov: dict[str, Any], path: Path) -> Path:
    """The YAML file, with a comment header saying what it is and how to use it."""
    header = [
        f"# archsearch export: {headline(prov)}",
        "# Rebuild the model:  archsearch.build_model(archsearch.ArchConfig.from_yaml(THIS_FILE))",
        f"# Check its costs:    archsearch measure THIS_FILE --profile {prov['profile']['name']}",
    ]
    body = yaml.safe_dump(document(config, prov), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(header) + "\n" + body)
    return path


def write_json(config: ArchConfig, prov: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document(config, prov), indent=2) + "\n")
    return path
