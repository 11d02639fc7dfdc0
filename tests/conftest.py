"""Shared fixtures: one small local Ray instance per test session, tiny YAML inputs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from archsearch.families import all_specs, memory_specs

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


@pytest.fixture(scope="session")
def micro_study(ray_local, tmp_path_factory) -> dict[str, Any]:
    """A tiny real search (3 trials of the micro space), run once per session for the tests
    that read a finished study. Readers that change it (plots attach artifacts) copy it first
    (``copy_study``)."""
    from archsearch.search import SearchOptions, run_search

    folder = tmp_path_factory.mktemp("micro_study")
    inputs = write_tiny_inputs(folder)
    run_search(
        SearchOptions(
            profile=str(inputs["profile"]),
            space=str(inputs["space"]),
            evaluator=str(inputs["evaluator"]),
            storage=inputs["storage"],
            study="micro",
            trials=3,
            workers=2,
        )
    )
    return {"url": inputs["storage"], "profile": inputs["profile"], "db": folder / "study.db"}


def copy_study(study: dict[str, Any], folder: Path) -> str:
    """A private copy of ``micro_study``'s database in ``folder``; its storage URL."""
    shutil.copyfile(study["db"], folder / "study.db")
    return f"sqlite:///{folder / 'study.db'}"


def write_tiny_inputs(folder: Path) -> dict[str, Any]:
    """A micro space, a budget that splits it, and a recipe that trains in about a second, as
    files in ``folder``; a study database there."""
    return {
        "space": write_yaml(folder / "micro.yaml", TINY_SPACE),
        "profile": write_yaml(folder / "micro_1M.yaml", TINY_PROFILE),
        "evaluator": write_yaml(folder / "tiny_brief.yaml", TINY_RECIPE),
        "storage": f"sqlite:///{folder / 'study.db'}",
    }


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> dict[str, Any]:
    """``write_tiny_inputs`` in the test's own folder."""
    return write_tiny_inputs(tmp_path)


# Every architecture family on a tiny model, one case each (plus memory, seq2seq and other
# options): the memory tests check each on the CPU tracker, and on the CUDA allocator where a
# GPU is present (test_cuda.py).
FAMILY_BATCH, FAMILY_TOKENS = 2, 64
FAMILY_BASE: dict[str, Any] = {
    "vocab_size": 64,
    "max_seq_len": 128,
    "d_model": 32,
    "n_layers": 2,
    "heads": 2,
    "ffn_ratio": 2,
}
# Each family's "tests" example (its spec's) makes it do its characteristic work at
# FAMILY_TOKENS (several chunks, buckets, blocks); a family without one gets a plain
# configuration and is still checked.
OTHER_CASES: dict[str, dict[str, Any]] = {
    "task=seq2seq": {
        "task": "seq2seq",
        "n_encoder_layers": 1,
        "encoder_attention": "local",
        "encoder_window": 8,
        "encoder_global_tokens": 2,
    },
    # HAT's SubTransformers: post-norm with biases, an encoder of its own width, decoder layers
    # reading the last encoder layers with their own cross-attention heads (scalars: the
    # torch-free test makes a space of each case, where per-layer lists need fixed counts)
    "task=seq2seq,hat": {
        "task": "seq2seq",
        "n_encoder_layers": 3,
        "encoder_d_model": 48,
        "encoder_heads": 4,
        "cross_layers": 3,
        "cross_heads": 4,
        "bias": True,
        "norm": "post",
        "activation": "relu",
    },
    "post_norm+bias": {"norm": "post", "bias": True, "dropout": 0.1},
    "albert+dropout": {"embed_dim": 16, "tie_embeddings": False, "dropout": 0.1},
    "lsra=lightweight": {"attention": "lsra", "lsra_split": 0.5, "conv_kernel": 3},
    "relu+shared": {"activation": "relu", "share_layers": True},
}


def _family_cases() -> dict[str, dict[str, Any]]:
    cases = {
        f"{spec.kind}={spec.name}": {spec.kind: spec.name, **(spec.example("tests") or {})}
        for spec in all_specs()
    }
    for memory in memory_specs().values():
        example = memory.example("tests")
        if example is not None:
            cases[f"memory={memory.name}"] = example
    cases.update(OTHER_CASES)
    return cases


FAMILY_CASES = _family_cases()


def built_family(config: Any, batch: int, tokens: int) -> tuple[torch.nn.Module, tuple, Any]:
    """``config``'s model (seed 0), its token inputs (the decoder's reversed for seq2seq) and a
    full recurrent state (causal models with memory), as both memory tests measure them."""
    from archsearch import build_model
    from archsearch.models.memory import steady_state

    torch.manual_seed(0)
    model = build_model(config)
    ids = torch.randint(0, config.vocab_size, (batch, tokens))
    inputs = (ids, ids.flip(1)) if config.task == "seq2seq" else (ids,)
    state = steady_state(config, batch) if config.task == "causal_lm" else None
    return model, inputs, state
