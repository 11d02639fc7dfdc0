"""A fidelity run's worker processes end with it, even when only the parent is killed; a
worker killed on its own ends the run with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import TINY_PROFILE, TINY_RECIPE, TINY_SPACE, write_yaml

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the parent-death signal is Linux's"
)


def _children(parent: int) -> dict[int, bytes]:
    """pid -> command line of every live process whose parent is ``parent``."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and fields[0] != "Z":
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while it was read
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@contextmanager
def busy_fidelity(tmp_path: Path, *flags: str) -> Iterator[tuple[subprocess.Popen, list[int]]]:
    """``archsearch fidelity`` with 2 workers busy in long runs (4000 x 1,024 tokens, a minute
    or more each): the command and its workers' pids; whatever is left is killed afterwards."""
    inputs = {
        "space": write_yaml(tmp_path / "space.yaml", TINY_SPACE),
        "profile": write_yaml(tmp_path / "profile.yaml", TINY_PROFILE),
        "evaluator": write_yaml(tmp_path / "recipe.yaml", TINY_RECIPE),
    }
    argv = [sys.executable, "-m", "archsearch.cli", "fidelity"]
    argv += [f"--{key}={path}" for key, path in inputs.items()]
    argv += ["--configs=4", "--factor=4000", "--workers=2", "--proxies=none", *flags]
    command = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path, text=True
    )
    workers: list[int] = []
    try:

        def training() -> bool:
            found = [pid for pid, line in _children(command.pid).items() if b"spawn_main" in line]
            workers.extend(pid for pid in found if pid not in workers)
            return len(workers) == 2

        assert _wait(training, 60), "the two workers never started"
        time.sleep(2)  # both are inside their long runs now
        assert all(_alive(pid) for pid in workers)
        yield command, workers
    finally:
        if command.poll() is None:
            command.kill()
        command.communicate()
        for pid in workers:
            if _alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)


def test_sigterm_to_the_command_ends_its_busy_workers(tmp_path: Path) -> None:
    with busy_fidelity(tmp_path) as (command, workers):
        command.send_signal(signal.SIGTERM)
        command.communicate(timeout=30)
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 15), (
            "workers outlived the command"
        )


def test_a_worker_killed_for_memory_ends_the_run_with_one_line(tmp_path: Path) -> None:
    """SIGKILL, as the out-of-memory killer sends it, to one worker: the command says so in one
    line, names what it kept, exits 1, and leaves no worker behind."""
    journal = tmp_path / "journal.jsonl"
    with busy_fidelity(tmp_path, f"--save={journal}") as (command, workers):
        os.kill(workers[0], signal.SIGKILL)
        _, err = command.communicate(timeout=60)
        assert command.returncode == 1, err
        lines = [line for line in err.splitlines() if not line.startswith("[")]  # progress
        assert len(lines) == 1 and "Traceback" not in err, err
        assert "worker process died" in lines[0] and str(journal) in lines[0]
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 15), "a worker lived on"
