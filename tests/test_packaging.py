"""The wheel ships the built-in YAML folders: a fresh environment lists them."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from archsearch.builtins import KINDS, list_builtins

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"search_spaces": "spaces", "evaluators": "evaluators", "hardware_profiles": "profiles"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (built,) = out.glob("archsearch-*.whl")
    return built


def _without_pythonpath() -> dict[str, str]:
    """This environment less PYTHONPATH, which would put a checkout before the wheel."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_wheel_contains_every_builtin(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in KINDS:
        for name in list_builtins(kind):
            assert f"archsearch/_builtin/{kind}/{name}.yaml" in names


def test_fresh_environment_lists_the_builtins(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # Install the wheel itself into the fresh environment; borrow the (large) dependencies from
    # this environment through a .pth line instead of downloading them again.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
    )
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    where = subprocess.run(
        [str(python), "-c", "import archsearch; print(archsearch.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_without_pythonpath(),
    ).stdout.strip()
    assert Path(where).is_relative_to(site), "the wheel, not the checkout, must be imported"
    for kind, command in COMMANDS.items():
        listed = subprocess.run(
            [str(python), "-m", "archsearch.cli", command],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=_without_pythonpath(),
        ).stdout.split("\n")
        names = [line.split()[0] for line in listed if line.strip()]
        assert names == list_builtins(kind)
        assert all(str(site) in line for line in listed if line.strip())
