"""Shared fixtures: one small local Ray instance per test session, tiny YAML inputs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tests never read or write the user's cache (latency predictors, tokenizers): a private one per
# session, set before Ray starts so its workers inherit it.
_SESSION_CACHE = tempfile.mkdtemp(prefix="archsearch-test-cache-")
os.environ["ARCHSEARCH_CACHE_DIR"] = _SESSION_CACHE
atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)
# Tiny models run fastest on one thread, and timings do not depend on the machine's load.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Every test runs tiny models on one thread (as evaluate() does), whatever an earlier
    test set; the setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_RECIPE = {
    "name": "tiny_brief",
    "task": "causal_lm",
    "data": "python_stdlib",
    "tokenizer": "bytes",
    "seq_len": 32,
    "batch_size": 4,
    "token_budget": 1024,
    "optimizer": {"name": "adamw", "lr": 3.0e-3, "betas": [0.9, 0.95], "weight_decay": 0.1},
    "schedule": {"warmup_fraction": 0.1, "final_lr_ratio": 0.1},
    "grad_clip": 1.0,
    "eval_tokens": 256,
    "eval_points": 2,
    "seed": 0,
}

TINY_SPACE = {
    "name": "micro",
    "task": "causal_lm",
    "fixed": {"vocab_size": 256, "max_seq_len": 32, "attention": "full", "ffn": "dense"},
    "params": {
        "n_layers": {"int": [1, 2]},
        "d_model": {"choice": [16, 32, 64, 128]},
        "heads": {"choice": [2, 4]},
        "ffn_ratio": {"choice": [1, 2]},
    },
    "constraints": ["d_model % (2 * heads) == 0"],
}

TINY_PROFILE = {
    "name": "micro_1M",
    "description": "Test profile: 1M MACs per 30 tokens cuts the micro space in two.",
    "convention": {"tokens": 30, "exclude": ["embedding", "output"]},
    "budgets": {"macs": 1_000_000},
    "objectives": ["macs"],
}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs, no dashboard) shared by every test that needs it."""
    import ray

    from archsearch.search.ray_session import ensure_ray

    started = ensure_ray(None, num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> dict[str, Path]:
    """A micro space, a budget that splits it, and a recipe that trains in about a second."""
    return {
        "space": write_yaml(tmp_path / "micro.yaml", TINY_SPACE),
        "profile": write_yaml(tmp_path / "micro_1M.yaml", TINY_PROFILE),
        "evaluator": write_yaml(tmp_path / "tiny_brief.yaml", TINY_RECIPE),
        "storage": f"sqlite:///{tmp_path / 'study.db'}",
    }
