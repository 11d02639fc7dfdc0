"""Resumable training: stop, resume, and end exactly where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_RECIPE, write_yaml

from archsearch import ArchConfig
from archsearch.cli import main
from archsearch.errors import InputError
from archsearch.evaluate.checkpoint import (
    CHECKPOINT,
    FORMAT,
    load_checkpoint,
    train_resumable,
)
from archsearch.evaluate.recipe import Recipe

# Memory and dropout: the recurrent state and the random generator must survive a restart too.
ARCH = {
    "d_model": 32,
    "n_layers": 1,
    "heads": 2,
    "ffn_ratio": 2,
    "max_seq_len": 32,
    "memory": "xl",
    "mem_len": 16,
    "dropout": 0.1,
}


def _recipe(**changes: Any) -> Recipe:
    # 2048 tokens = 16 steps of 4 x 32; validation at steps 8 and 16
    return Recipe.from_dict({**TINY_RECIPE, "token_budget": 2048, **changes})


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder / CHECKPOINT)["model"]


@pytest.mark.parametrize("stop_at", [5, 8], ids=["between-evals", "at-an-eval"])
def test_stopping_and_resuming_equals_one_uninterrupted_run(tmp_path: Path, stop_at: int) -> None:
    config, recipe = ArchConfig.from_dict(ARCH), _recipe()
    whole = train_resumable(config, recipe, tmp_path / "whole")
    assert whole.finished and whole.step == recipe.steps == 16

    first = train_resumable(config, recipe, tmp_path / "split", stop_at=stop_at)
    assert not first.finished and first.step == stop_at
    assert load_checkpoint(tmp_path / "split" / CHECKPOINT)["step"] == stop_at
    second = train_resumable(config, recipe, tmp_path / "split", resume=True)
    assert second.finished and second.step == 16

    assert second.curve == whole.curve  # every validation point, to the last bit
    ours, theirs = _weights(tmp_path / "split"), _weights(tmp_path / "whole")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not list((tmp_path / "split").glob("*.tmp"))  # written atomically


def test_checkpoints_refuse_anything_but_tensors_and_plain_data(tmp_path: Path) -> None:
    """weights_only loading: a file holding an arbitrary object is an error, not code to run."""
    path = tmp_path / CHECKPOINT
    torch.save({"format": FORMAT, "payload": Path("x")}, path)
    with pytest.raises(InputError) as info:
        load_checkpoint(path)
    assert info.value.key == "--resume"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_checkpoint(path)
    torch.save({"format": "something-else"}, path)
    with pytest.raises(InputError):
        load_checkpoint(path)


def test_resume_checks_config_recipe_and_folder(tmp_path: Path) -> None:
    config, recipe = ArchConfig.from_dict(ARCH), _recipe()
    train_resumable(config, recipe, tmp_path, stop_at=4)
    with pytest.raises(InputError) as info:
        train_resumable(config, recipe, tmp_path)  # would overwrite
    assert info.value.key == "--out"
    with pytest.raises(InputError) as info:
        train_resumable(config, _recipe(token_budget=4096), tmp_path, resume=True)
    assert info.value.key == "--resume" and "token_budget" in info.value.message
    with pytest.raises(InputError) as info:
        train_resumable(config.replace(d_model=64), recipe, tmp_path, resume=True)
    assert info.value.key == "--resume"
    with pytest.raises(InputError) as info:
        train_resumable(config, recipe, tmp_path / "empty", resume=True)
    assert info.value.key == "--resume"


def test_cli_trains_stops_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = write_yaml(tmp_path / "arch.yaml", ARCH)
    recipe = write_yaml(tmp_path / "recipe.yaml", TINY_RECIPE)
    common = ["train", str(arch), "--tokens=2048", f"--evaluator={recipe}", "--threads=1"]
    common += ["--eval-points=2"]
    assert main([*common, f"--out={tmp_path / 'one'}"]) == 0
    whole = capsys.readouterr().out
    assert main([*common, f"--out={tmp_path / 'two'}", "--stop-after=1024"]) == 0
    stopped = capsys.readouterr()
    assert "--resume" in stopped.err
    assert main([*common, f"--out={tmp_path / 'two'}", "--resume"]) == 0
    resumed = capsys.readouterr().out
    assert whole.splitlines()[-1].split(";")[0] == resumed.splitlines()[-1].split(";")[0]
    assert "step     16/16" in resumed
    assert ArchConfig.from_yaml(tmp_path / "two" / "config.yaml") == ArchConfig.from_dict(ARCH)
    assert main([*common[:2], "--tokens=10", f"--out={tmp_path / 'x'}"]) == 2
    assert "--tokens" in capsys.readouterr().err
