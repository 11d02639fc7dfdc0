"""Every YAML loader against generated files (issue #18): a space, profile, recipe or
architecture file either loads or is answered with one ``InputError`` line naming the file (and
the key, once the file parses as a mapping), in well under a second. Never a traceback, never a
hang on a mistyped count.

The files are the shipped ones, mutated (tests/fuzz_documents.py). Hypothesis runs derandomized,
so CI sees the same documents every time; ``ARCHSEARCH_FUZZ_EXAMPLES=5000 pytest -s
tests/test_loader_fuzz.py -k mutated`` tries more and prints the tally.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from archsearch.config import MAX_LAYERS, ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate.recipe import load_recipe
from archsearch.profiles import load_profile
from archsearch.space import load_space
from archsearch.yamlfile import MAX_BYTES
from tests.fuzz_documents import architecture_documents, builtin_documents, mutate, write

EXAMPLES = int(os.environ.get("ARCHSEARCH_FUZZ_EXAMPLES", "100"))
# "Well under a second": the slowest files here (5000 nested brackets) take 0.25 s on an idle
# machine. Measured in CPU time, so that a busy CI runner cannot fail the test by preempting it.
ANSWER_SECONDS = 1.0
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same documents on every run: CI is stable
    database=None,
    deadline=None,  # the time limit is asserted per document instead
    suppress_health_check=[HealthCheck.too_slow],
    # No explain phase: its line tracer makes PyYAML 10-20x slower, which the time limit
    # would then report in place of the real failure.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
# Problems with the file as a whole; every other answer names a key.
KEYLESS = (
    "not valid YAML",
    "not UTF-8",
    "is ",
    "nests ",
    "expands ",
    "alias ",
    "a search space must be a mapping",
    "a profile must be a mapping",
    "an architecture must be a mapping",
    "must be a mapping of keys to values",  # a recipe that is not a mapping
)


def _load_space(path: Path) -> Any:
    """Load, then draw a few candidates as ``run`` would: a loaded space must sample cleanly
    (an architecture it describes may still be invalid: the search records that per trial)."""
    space = load_space(path)
    rng = random.Random(0)
    for _ in range(3):
        values = space.sample(rng)
        if not space.violations(values):
            with contextlib.suppress(InputError):  # recorded as an invalid trial by the search
                space.to_config(values)
    return space


LOADERS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Path], Any]]] = {
    "space": (lambda: builtin_documents("search_spaces"), _load_space),
    "profile": (lambda: builtin_documents("hardware_profiles"), load_profile),
    "recipe": (lambda: builtin_documents("evaluators"), load_recipe),
    "architecture": (architecture_documents, ArchConfig.from_yaml),
}


@functools.cache
def documents(kind: str) -> dict[str, Any]:
    return LOADERS[kind][0]()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def tally() -> Iterator[collections.Counter]:
    counts: collections.Counter = collections.Counter()
    yield counts
    total = sum(counts.values())
    print(
        f"\nfuzzed {total} documents: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )


def answer(load: Callable[[Path], Any], path: Path) -> str:
    """``loaded`` or ``rejected``; anything else fails the test with the file's text."""
    start = time.process_time()
    try:
        load(path)
        outcome = "loaded"
    except InputError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text, text
        assert text.startswith(f"{path}: "), text
        assert exc.key is not None or exc.message.startswith(KEYLESS), text
        assert len(text) < 1500, text
        outcome = "rejected"
    elapsed = time.process_time() - start
    assert elapsed < ANSWER_SECONDS, f"{elapsed:.2f} s to answer {path}: {path.read_text()[:300]!r}"
    return outcome


@pytest.mark.parametrize("kind", list(LOADERS))
@FUZZ
@given(rng=st.randoms(use_true_random=False))
def test_mutated_files_load_or_get_one_line(kind, rng, folder, tally):
    docs = documents(kind)
    doc = mutate(docs[rng.choice(sorted(docs))], rng)
    path = write(folder, kind, doc, rng, raw=rng.random() < 0.25)
    tally[f"{kind} {answer(LOADERS[kind][1], path)}"] += 1


# ---- the cases the issue names, and the file-level limits, one by one -----------------------


def _hat(**changes: Any) -> dict[str, Any]:
    doc = documents("space")["hat"]
    return {**doc, **changes}


def _recipe(**changes: Any) -> dict[str, Any]:
    return {**documents("recipe")["lm_brief"], **changes}


SPACE_CASES = {
    "a million encoder layers": (
        _hat(fixed={**_hat()["fixed"], "n_encoder_layers": 1_000_000}),
        "fixed.n_encoder_layers",
    ),
    "a million decoder layers to search": (
        _hat(params={**_hat()["params"], "n_layers": {"int": [1, 1_000_000]}}),
        "params.n_layers",
    ),
    "an integer range past a float": (
        _hat(params={**_hat()["params"], "d_model": {"int": [160, 10**400], "step": 32}}),
        "params.d_model.int",
    ),
    "a constraint dividing by a 400-digit number": (
        _hat(
            params={**_hat()["params"], "heads": {"choice": [10**400], "per_layer": True}},
            constraints=["d_model / heads > 1"],
        ),
        "constraints[0]",
    ),
    "a float step that overflows": (
        _hat(params={**_hat()["params"], "ffn_ratio": {"float": [0, 1e300], "step": 1e-300}}),
        "params.ffn_ratio.step",
    ),
}


@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_spaces_with_runaway_sizes_are_refused_at_once(case, folder):
    doc, key = SPACE_CASES[case]
    path = folder / "runaway.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert answer(load_space, path) == "rejected"
    with pytest.raises(InputError) as caught:
        load_space(path)
    assert caught.value.key == key


def test_the_most_layers_with_an_impossible_constraint_answer_quickly(folder):
    """MAX_LAYERS per stack with per-layer parameters: the satisfiability check samples fewer
    candidates when each draws thousands of values, so the answer still comes at once."""
    doc = _hat(
        fixed={**_hat()["fixed"], "n_encoder_layers": MAX_LAYERS},
        params={**_hat()["params"], "n_layers": {"choice": [MAX_LAYERS]}},
        constraints=["encoder_heads == 3"],
    )
    path = folder / "deep.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert answer(load_space, path) == "rejected"


@pytest.mark.parametrize(
    ("key", "value"),
    [("batch_size", "8"), ("grad_clip", "one"), ("seq_len", [64]), ("seq_len", 1.5)],
)
def test_a_recipe_number_of_the_wrong_type_is_one_line(key, value, folder):
    doc = _recipe(**{key: value}, curriculum={"start_seq_len": 16, "fraction": 0.5})
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as caught:
        load_recipe(path)
    assert caught.value.key == key


def test_an_architecture_with_a_million_layers_is_refused(folder):
    path = folder / "arch.yaml"
    path.write_text(yaml.safe_dump({"n_layers": 1_000_000, "d_model": 64}))
    assert answer(ArchConfig.from_yaml, path) == "rejected"


FILE_CASES = {
    "alias bomb": "\n".join(
        ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    ),
    "alias inside itself": "fixed: &a {d_model: *a}\n",
    "deep nesting": "fixed: " + "[" * 5000 + "]" * 5000 + "\n",
    "an integer of 5000 digits": "fixed: {d_model: 1" + "0" * 5000 + "}\n",
    "too large": "# padding\n" * (MAX_BYTES // 10 + 1),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
@pytest.mark.parametrize("kind", list(LOADERS))
def test_hostile_files_are_answered_by_the_reader(case, kind, folder):
    path = folder / f"{kind}.yaml"
    path.write_text(FILE_CASES[case])
    assert answer(LOADERS[kind][1], path) == "rejected"


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_file_that_is_not_utf8_is_one_line(kind, folder):
    path = folder / f"{kind}.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert answer(LOADERS[kind][1], path) == "rejected"


# ---- through the command line ----------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsearch", *args], capture_output=True, text=True, timeout=120
    )


def _one_line_exit_2(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_refuses_a_million_layers_in_one_line(folder):
    path = folder / "million.yaml"
    path.write_text(yaml.safe_dump(SPACE_CASES["a million encoder layers"][0]))
    start = time.perf_counter()
    result = _cli("run", "--space", str(path), "--evaluator", "lm_brief", "--trials", "1")
    assert time.perf_counter() - start < 30  # the interpreter's start-up, not the space
    _one_line_exit_2(result, str(path), "fixed.n_encoder_layers", str(MAX_LAYERS))


def test_train_refuses_a_text_grad_clip_in_one_line(folder):
    arch = folder / "arch_ok.yaml"
    arch.write_text(yaml.safe_dump({"n_layers": 1, "d_model": 32, "heads": 2}))
    recipe = folder / "clip.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(grad_clip="1.0 or so")))
    _one_line_exit_2(
        _cli("train", str(arch), "--evaluator", str(recipe), "--tokens", "1024"),
        str(recipe),
        "grad_clip",
    )
