"""``archsearch run`` as a user runs it: in its own process, interrupted with Ctrl-C and
with kill -9, run again; and joined to a Ray cluster started with ``ray start``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from archsearch.search.resume import TRAINED, WORKER_STATUSES, trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, TINY_SPACE, write_yaml

pytestmark = pytest.mark.slow

WAIT_S = 180  # generous: the machine may be shared


def archsearch_run(inputs: dict, storage: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "archsearch.cli",
        "run",
        "--space",
        str(inputs["space"]),
        "--profile",
        str(inputs["profile"]),
        "--evaluator",
        str(inputs["evaluator"]),
        "--storage",
        storage,
        "--study",
        "cli",
        *extra,
    ]


def start(command: list[str], cwd: Path, **extra_env: str) -> subprocess.Popen:
    """In a session of its own, as a terminal would run it: signals go to its whole group."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", **extra_env)
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def count(db: Path, state: str) -> int:
    """Trials in ``state``, read with plain sqlite3 while the driver writes."""
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            query = "SELECT count(*) FROM trials WHERE state = ?"
            return connection.execute(query, (state,)).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"exited ({process.returncode}) before {what}:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} after {WAIT_S} s")
        time.sleep(0.25)


def session_members(sid: int) -> list[int]:
    """Processes still in session ``sid`` (the killed run's Ray workers may linger a while)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                members.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            pass
    return members


def end_session(sid: int) -> None:
    """SIGKILL, by pid, what is left of a session this test started."""
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop_head(head: subprocess.Popen) -> None:
    """``ray start --head --block`` ended as a user would (SIGTERM), then what it left."""
    head.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.wait(timeout=30)
    end_session(head.pid)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def test_ctrl_c_and_kill_9_then_the_same_command_continues_the_study(tiny_inputs, tmp_path):
    # Trials of a few seconds, so that the signals land while candidates are training.
    slow = write_yaml(tmp_path / "slow.yaml", {**TINY_RECIPE, "token_budget": 4096})
    inputs = {**tiny_inputs, "evaluator": slow}
    db = tmp_path / "cli.db"
    storage = f"sqlite:///{db}"
    # The grid never proposes a configuration twice: a duplicate can only come from resuming.
    # 8 trials: with 5, a quiet machine could finish the last ones between two polls of the
    # second run, which then ended "done" before its kill -9 landed.
    extra = ("--trials", "8", "--workers", "2", "--sampler", "grid")
    command = archsearch_run(inputs, storage, *extra)
    walls = []

    # Ctrl-C in a terminal: SIGINT to the whole process group.
    began = time.monotonic()
    first = start(command, tmp_path)
    wait_for(lambda: count(db, "COMPLETE") >= 1, first, "a complete trial")
    os.killpg(first.pid, signal.SIGINT)
    output = first.communicate(timeout=WAIT_S)[0]
    walls.append(time.monotonic() - began)
    assert first.returncode == 130, output
    assert "run the same command" in output
    assert count(db, "RUNNING") == 0  # closed by the driver itself, not left for later
    assert integrity(db) == "ok"

    # kill -9 of the whole process group once another candidate has finished.
    done = count(db, "COMPLETE")
    began = time.monotonic()
    second = start(command, tmp_path)
    wait_for(lambda: count(db, "COMPLETE") > done, second, "another complete trial")
    os.killpg(second.pid, signal.SIGKILL)
    second.wait(timeout=WAIT_S)
    walls.append(time.monotonic() - began)
    assert integrity(db) == "ok"

    # The same command again, while the killed run's workers may still be around.
    began = time.monotonic()
    third = start(command, tmp_path)
    output = third.communicate(timeout=WAIT_S * 2)[0]
    walls.append(time.monotonic() - began)
    end_session(second.pid)
    assert third.returncode == 0, output
    assert integrity(db) == "ok"

    study = load_study(storage, "cli")
    trials = study.get_trials()
    assert count(db, "RUNNING") == 0
    interrupted = check_resumed(study, 8)
    reasons = {t.user_attrs["reason"] for t in interrupted}
    assert any("Ctrl-C" in reason for reason in reasons)  # closed by the interrupted driver
    trained = [t for t in trials if t.user_attrs.get("status") in TRAINED]
    assert sorted(t.user_attrs["baseline"] for t in trained if "baseline" in t.user_attrs) == [
        "lite_transformer",
        "transformer",
    ]  # queued once, trained once, through both interruptions

    # Cost accounting across the three runs.
    runs = study.user_attrs["search_runs"]
    assert [run["status"] for run in runs] == ["interrupted", "killed", "done"]
    # Each run that got as far as starting Ray had its own fresh instance. (The killed run may
    # die before its Ray starts: its first COMPLETE can be a retry answered from its twin.)
    addresses = [run["ray_address"] for run in runs if "ray_address" in run]
    assert "ray_address" in runs[0] and "ray_address" in runs[-1]
    assert len(set(addresses)) == len(addresses)
    for run, wall in zip(runs, walls, strict=True):
        assert 0 < run["wall_s"] <= wall
    assert study.user_attrs["search_wall_s"] == pytest.approx(
        sum(run["wall_s"] for run in runs), abs=1e-2
    )
    trial_cpu = sum(t.user_attrs.get("cpu_s", 0.0) for t in trials)
    assert study.user_attrs["search_trial_cpu_s"] == pytest.approx(trial_cpu, abs=1e-2)


def check_resumed(study: optuna.Study, expected: int) -> list[optuna.trial.FrozenTrial]:
    """What an interrupted-then-resumed search must hold: ``expected`` candidates trained, none
    twice; each trial a worker had when the run died queued again exactly once (same parameters,
    same baseline), and a trial the driver was still sampling or judging never retried (it never
    trained). Returns the interrupted trials."""
    trials = study.get_trials()
    assert trained_count(study) == expected
    trained = [t for t in trials if t.user_attrs.get("status") in TRAINED]
    duplicates = Counter(tuple(sorted(t.params.items())) for t in trained)
    assert max(duplicates.values()) == 1, "a candidate was trained twice"
    interrupted = [t for t in trials if t.user_attrs.get("status") == "interrupted"]
    assert interrupted, "the interruptions landed while candidates were training"
    for trial in interrupted:
        retries = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
        if trial.user_attrs["interrupted_while"] in WORKER_STATUSES:  # a worker had it: queued once
            assert len(retries) == 1 and retries[0].params == trial.params
            assert retries[0].user_attrs.get("baseline") == trial.user_attrs.get("baseline")
        else:  # killed while the driver sampled or judged it: never reached a worker
            assert not retries and "wall_s" not in trial.user_attrs
    return interrupted


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_joins_a_ray_cluster_and_stops_at_the_timeout(tiny_inputs, tmp_path):
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    head = start(
        [
            str(ray),
            "start",
            "--head",
            "--block",  # stays in the foreground: ending its session ends the cluster
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        tmp_path,
    )
    try:
        address = f"127.0.0.1:{port}"
        wait_for(lambda: _listening(port), head, "the cluster's GCS port")
        # Any SQLAlchemy URL: here SQLite through an explicit driver name.
        storage = f"sqlite+pysqlite:///{tmp_path / 'cluster.db'}"
        timeout = 25
        extra = ("--trials", "500", "--address", address, "--timeout", str(timeout))
        # A continuous parameter: proposals never repeat, so only the timeout ends the search
        # (a small finite space would run out of untrained architectures first).
        endless = {**TINY_SPACE, "params": {**TINY_SPACE["params"], "dropout": {"float": [0, 0.1]}}}
        inputs = {**tiny_inputs, "space": write_yaml(tmp_path / "endless.yaml", endless)}
        began = time.monotonic()
        run = start(archsearch_run(inputs, storage, *extra), tmp_path)
        output = run.communicate(timeout=WAIT_S * 2)[0]
        wall = time.monotonic() - began
    finally:
        stop_head(head)
    assert run.returncode == 0, output
    assert "stopped by --timeout" in output
    assert "Token authentication" not in output  # joining is quiet too
    study = load_study(storage, "cli")
    entry = study.user_attrs["search_runs"][-1]
    # Ray reports the head by the machine's address; the port is that cluster's own.
    assert entry["ray_address"].rsplit(":", 1)[1] == str(port)  # the trials ran on it
    assert entry["status"] == "timeout"
    assert 1 <= trained_count(study) < 500
    assert entry["wall_s"] < timeout + 20 and wall < timeout + 60
    states = {t.state for t in study.get_trials()}
    assert optuna.trial.TrialState.RUNNING not in states
    nodes = {t.user_attrs.get("ray_node") for t in study.get_trials() if "wall_s" in t.user_attrs}
    assert len(nodes) == 1 and None not in nodes  # one node: the head of that cluster


def test_run_is_quiet_unless_verbose(tiny_inputs, tmp_path):
    """Ray's start-up and token-authentication notices stay off the terminal; ``--verbose``
    lets them through (which shows this test would see them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "ARCHSEARCH_VERBOSE")}
    stderr = {}
    for flag in ((), ("--verbose",)):
        db = tmp_path / f"quiet{len(flag)}.db"
        command = archsearch_run(tiny_inputs, f"sqlite:///{db}", "--trials", "1", "--workers", "1")
        result = subprocess.run(
            [*command, *flag], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=WAIT_S
        )
        assert result.returncode == 0, result.stderr
        stderr[flag] = result.stderr
    assert stderr[()] == ""
    assert "Ray" in stderr[("--verbose",)]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0
