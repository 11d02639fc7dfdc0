"""The command line: built-ins listed, bad input answered with one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archsearch import ArchConfig, estimate_costs, load_profile
from archsearch.builtins import list_builtins
from archsearch.cli import build_parser
from archsearch.search.inputs import SearchOptions
from tests.conftest import TINY_SPACE, write_yaml


def archsearch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsearch", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    ("command", "kind"),
    [("spaces", "search_spaces"), ("profiles", "hardware_profiles"), ("evaluators", "evaluators")],
)
def test_lists_builtins(command, kind):
    result = archsearch(command)
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list_builtins(kind)


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """`archsearch profiles | head -0`: no traceback, the status a SIGPIPE'd tool reports."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "archsearch.cli", "profiles"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()  # before the command writes anything
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, stderr
    assert stderr == ""


def test_unknown_builtin_names_the_flag(tmp_path):
    assert_one_line_error(archsearch("run", "--profile", "mobile_1M", cwd=tmp_path), "--profile")
    assert_one_line_error(archsearch("run", "--space", "nope", cwd=tmp_path), "--space")
    assert not (tmp_path / "runs").exists(), "bad input must not leave a study behind"


def test_bad_flag_value_is_one_line(tmp_path):
    assert_one_line_error(archsearch("run", "--trials", "many", cwd=tmp_path), "--trials")
    assert_one_line_error(archsearch("run", "--trials", "0", cwd=tmp_path), "--trials")


HEAVY = ("torch", "optuna", "ray")  # seconds to import, each


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["profiles"],
        ["run", "--space", "missing.yaml"],
        ["run", "--trials", "0"],
        ["run", "--profile", "mobile_1M"],
    ],
)
def test_help_listings_and_input_errors_import_no_heavy_library(tmp_path, argv):
    """Answering these needs only the YAML readers: a bad flag is answered at once, not after
    Optuna, Ray and torch have loaded."""
    probe = (
        "import sys\n"
        "from archsearch.cli import main\n"
        "try:\n"
        f"    status = main({argv!r})\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        f"print('\\nIMPORTED', [m for m in {HEAVY!r} if m in sys.modules], status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("IMPORTED"), result.stdout + result.stderr
    imported, status = last.removeprefix("IMPORTED ").rsplit(" ", 1)
    assert imported == "[]", f"{argv} imported {imported}"
    assert int(status) == (0 if argv[0] in ("--help", "profiles") else 2), result.stderr


@pytest.mark.parametrize("command", ["run", "fidelity"])
def test_an_evaluator_for_another_task_is_refused(tmp_path, command):
    """A causal-LM space with the encoder-decoder `reverse` recipe: one line naming both."""
    result = archsearch(command, "--space", "tiny_lm", "--evaluator", "reverse", cwd=tmp_path)
    assert_one_line_error(result, "--evaluator", "tiny_lm", "causal_lm", "reverse", "seq2seq")


def test_malformed_space_file_names_file_and_key(tmp_path):
    broken = {**TINY_SPACE, "params": {**TINY_SPACE["params"], "d_modle": {"choice": [32]}}}
    path = write_yaml(tmp_path / "broken.yaml", broken)
    assert_one_line_error(
        archsearch("run", "--space", str(path), cwd=tmp_path), str(path), "d_modle"
    )
    (tmp_path / "syntax.yaml").write_text("params: {n_layers: {int: [1, 2]}\n")
    result = archsearch("run", "--space", str(tmp_path / "syntax.yaml"), cwd=tmp_path)
    assert_one_line_error(result, "syntax.yaml")


def test_measure_json_agrees_with_the_library(tmp_path):
    arch = {"n_layers": 3, "d_model": 96, "heads": [2, 4, 8], "ffn_dim": 200, "embed_dim": 32}
    path = write_yaml(tmp_path / "arch.yaml", arch)
    result = archsearch("measure", str(path), "--profile", "mobile_100M", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = estimate_costs(ArchConfig.from_dict(arch), load_profile("mobile_100M"))
    assert report["macs"] == expected.macs
    assert report["params"] == expected.params


def test_measure_rejects_a_bad_architecture(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump({"n_layers": 2, "d_model": 100, "heads": 3}))
    assert_one_line_error(archsearch("measure", str(path)), "arch.yaml", "heads")


def test_fidelity_measures_the_recipe_run_trains_its_front_with_by_default():
    """The fidelity figures in the README are the default search's: `run` (and the Python
    API) scores by the supernet and trains its finalists with the recipe `fidelity` measures
    when none is given."""
    from archsearch.evaluate.recipe import load_recipe

    parser = build_parser()
    searched = parser.parse_args(["run"]).evaluator
    assert searched == SearchOptions().evaluator
    assert searched in list_builtins("evaluators")
    supernet = load_recipe(searched).supernet
    assert supernet is not None
    measured = parser.parse_args(["fidelity"]).evaluator
    assert measured == supernet.finalist_evaluator
    assert measured in list_builtins("evaluators")


def test_run_refuses_what_the_default_supernet_cannot_search(tmp_path):
    # The default recipe scores by a supernet, which cannot carry recurrent memory: refused
    # with the space file and key before anything starts, as are a negative --finalists and a
    # supernet recipe whose finalists' recipe does not train.
    result = archsearch("run", "--space", "efficient_lm", cwd=tmp_path)
    assert_one_line_error(result, "efficient_lm.yaml", "memory", "supernet")
    assert_one_line_error(archsearch("run", "--finalists", "-1", cwd=tmp_path), "--finalists")
    recipe = load_recipe_dict("supernet_brief")
    recipe["supernet"]["finalist_evaluator"] = "proxy_grad_norm"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = archsearch("run", "--evaluator", str(path), cwd=tmp_path)
    assert_one_line_error(result, "bad.yaml", "supernet.finalist_evaluator", "proxy_grad_norm")
    assert not (tmp_path / "runs").exists()  # no study was created


def load_recipe_dict(name: str) -> dict:
    from archsearch.builtins import resolve

    return yaml.safe_load(Path(resolve("evaluators", name, option="--evaluator")).read_text())
