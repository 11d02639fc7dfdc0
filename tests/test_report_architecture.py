"""The compact architecture text of the report tables: it must say, layer by layer, the families
the model really has (checked by expanding it back against the configuration's own layers), and
be short enough for an 80-column table."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from archsearch import ArchConfig
from archsearch.report.architecture import compact_arch, wide_arch
from archsearch.space import load_space
from archsearch.supernet.model import sample_config

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"
RUN = re.compile(r"^(?:(\d+)×)?([a-z]+)/([a-z]+?)(\d*)$")
SHORT = {"lin": "linformer", "perf": "performer", "moe": "switch_moe"}


def expand(text: str) -> tuple[int, list[tuple[str, str, str]]]:
    """(d_model, [(attention, ffn, its number)]) read back from the compact text."""
    words = text.split()
    d_model = int(words[0].removeprefix("d"))
    layers: list[tuple[str, str, str]] = []
    for word in words[1:]:
        match = RUN.match(word)
        if match is None:
            continue  # e<embed>, memory
        count, attention, ffn, number = match.groups()
        layer = (SHORT.get(attention, attention), SHORT.get(ffn, ffn), number)
        layers += [layer] * int(count or 1)
    return d_model, layers


def families(config: ArchConfig) -> list[tuple[str, str, str]]:
    """What each layer is, from the configuration itself."""
    found = []
    for layer in config.layers:
        number = {"switch_moe": str(layer.experts), "sparse": str(layer.sparsity)}.get(
            layer.ffn, ""
        )
        found.append((layer.attention, layer.ffn, number))
    return found


@pytest.mark.parametrize("seed", range(40))
def test_the_compact_text_expands_back_to_every_layers_families(seed):
    space = load_space(SPACES / "oneshot_lm.yaml")
    config = sample_config(space, random.Random(seed))
    arch = config.to_dict()
    text = compact_arch(arch)
    d_model, layers = expand(text)
    assert d_model == config.d_model
    assert layers == families(config)
    if config.embed_dim is not None:
        assert f"e{config.embed_dim}" in text.split()
    # shorter than the whole (what wrapped over five to seven lines in an 80-column table)
    assert len(text) < len(wide_arch(arch))


def test_identical_neighbours_collapse_and_different_ones_do_not():
    config = ArchConfig.from_dict(
        {
            "n_layers": 5,
            "d_model": 64,
            "heads": 2,
            "attention": ["full", "full", "local", "full", "full"],
            "window": [0, 0, 8, 0, 0],
            "ffn": ["dense", "dense", "dense", "switch_moe", "switch_moe"],
            "experts": [1, 1, 1, 4, 4],
        }
    )
    assert compact_arch(config.to_dict()) == "d64 2×full/dense local/dense 2×full/moe4"
    assert "attention=['full', 'full', 'local', 'full', 'full']" in wide_arch(config.to_dict())
