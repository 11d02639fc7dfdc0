"""Costs and the feasibility verdict of every family run in a process that cannot import torch.

The child process installs a meta-path finder that refuses ``torch`` (and every submodule),
then costs and judges one candidate per family case under budgets of every kind (MACs, memory,
predicted latency). Its figures must equal this process's, and torch must never be loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import FAMILY_BASE, FAMILY_CASES

from archsearch import ArchConfig, estimate_costs, load_profile
from archsearch.costs.int8 import int8_weight_bytes
from archsearch.costs.peak_bytes import generation_memory, inference_memory, training_memory
from archsearch.costs.predictor import Sample, cache_path, fit_predictor, latency_features

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("mobile_100M", "edge_inference", "gpu16_train", "cpu_latency_local")
TOKENS = 64
TIGHT_PROFILE = {
    "name": "tight",
    "convention": {"tokens": 30, "exclude": ["embedding", "output"]},
    "budgets": {"macs": 1000},
    "objectives": ["macs"],
}

BLOCK_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is blocked in this process ({name})")
        return None

sys.meta_path.insert(0, NoTorch())
"""

CHILD = (
    BLOCK_TORCH
    + """
import json
from archsearch import ArchConfig, estimate_costs, load_profile
from archsearch.costs.int8 import int8_weight_bytes
from archsearch.costs.peak_bytes import generation_memory, inference_memory, training_memory
from archsearch.search.verdict import judge
from archsearch.space import SearchSpace

cases, profiles, tokens = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
out = {}
for name, (arch, space_data, values) in cases.items():
    space = SearchSpace.from_dict(space_data)
    verdicts = {}
    for profile_name in profiles:
        verdict = judge(space, load_profile(profile_name), values)
        verdicts[profile_name] = [verdict.trainable, verdict.reason]
    config = ArchConfig.from_dict(arch)
    out[name] = {
        "costs": estimate_costs(config).to_dict(),
        "memory": [
            estimate(config, tokens, 2).to_dict()
            for estimate in (inference_memory, training_memory, generation_memory)
        ],
        "verdicts": verdicts,
        "weight_bytes_int8": int8_weight_bytes(config),
    }
out["torch_loaded"] = "torch" in sys.modules
print(json.dumps(out))
"""
)


# Options that are not a family case (the tracker tests cannot run them without neighbours).
OPTION_CASES: dict[str, dict[str, Any]] = {
    "retrieval": {"retrieval_chunk": 8, "retrieval_k": 2, "retrieve": True},
}


def _archs() -> dict[str, dict[str, Any]]:
    cases = {**FAMILY_CASES, **OPTION_CASES}
    return {name: {**FAMILY_BASE, **case} for name, case in cases.items()}


def _space(arch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-candidate space for ``arch`` (its layer counts as params) and that candidate."""
    counts = {k: arch[k] for k in ("n_layers", "n_encoder_layers") if k in arch}
    fixed = {k: v for k, v in arch.items() if k != "task" and k not in counts}
    space = {
        "name": "one_family",
        "task": arch.get("task", "causal_lm"),
        "fixed": fixed,
        "params": {k: {"int": [1, v]} for k, v in counts.items()},
    }
    return space, counts


def _write_predictor(archs: dict[str, dict[str, Any]]) -> None:
    """A latency predictor for this machine in the session's private cache, fitted on made-up
    timings of every case, so the latency budget is judged as in a real search."""
    samples = []
    for index, arch in enumerate(archs.values()):
        config = ArchConfig.from_dict(arch)
        for tokens in (32, 128):
            features = latency_features(config, tokens)
            ms = 0.05 + sum(v for k, v in features.items() if k.startswith("macs.")) / 10
            samples.append(Sample(arch, tokens, 1, ms * (1 + index % 3 / 10), 0.0, features))
    fit_predictor(samples).save(cache_path(1))


def run_without_torch(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``script`` in a fresh interpreter that refuses torch, this checkout first on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


def test_the_blocker_refuses_torch() -> None:
    result = run_without_torch(BLOCK_TORCH + "import torch\n")
    assert result.returncode != 0
    assert "torch is blocked" in result.stderr


def test_costs_and_verdicts_of_every_family_run_without_torch(tmp_path: Path) -> None:
    archs = _archs()
    _write_predictor(archs)
    tight = tmp_path / "tight.yaml"  # rejects every candidate: the verdict's other branch
    tight.write_text(yaml.safe_dump({**TIGHT_PROFILE}))
    profiles = (*PROFILES, str(tight))
    cases = {name: (arch, *_space(arch)) for name, arch in archs.items()}
    result = run_without_torch(CHILD, json.dumps(cases), json.dumps(profiles), str(TOKENS))
    assert result.returncode == 0, result.stderr[-3000:]
    child = json.loads(result.stdout)
    assert child.pop("torch_loaded") is False
    assert set(child) == set(archs)
    from archsearch.search.verdict import judge
    from archsearch.space import SearchSpace

    judged = {"feasible": 0, "over budget": 0}
    for name, arch in archs.items():
        config = ArchConfig.from_dict(arch)
        assert child[name]["costs"] == estimate_costs(config).to_dict(), name
        expected = [
            estimate(config, TOKENS, 2).to_dict()
            for estimate in (inference_memory, training_memory, generation_memory)
        ]
        assert child[name]["memory"] == expected, name
        assert child[name]["weight_bytes_int8"] == int8_weight_bytes(config), name
        space_data, values = _space(arch)
        space = SearchSpace.from_dict(space_data)
        for profile in profiles:
            verdict = judge(space, load_profile(profile), values)
            assert child[name]["verdicts"][profile] == [verdict.trainable, verdict.reason]
            assert "invalid" not in verdict.reason, (name, profile, verdict.reason)
            judged["feasible" if verdict.trainable else "over budget"] += 1
    assert judged["feasible"] > 0 and judged["over budget"] >= len(archs)
