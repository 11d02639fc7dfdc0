"""A Ray worker node lost mid-search (issue #18): the trials it ran are closed as interrupted
and run again on what is left, and the search ends with every candidate trained exactly once.

A real two-node cluster on loopback: two ``ray start`` processes (a head, and a worker node
that joins it), one CPU each, so that with two workers one trial trains on each node. The
worker node's whole process session is killed with SIGKILL while both train.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from archsearch.search.resume import LOST, TRAINED, trained_count
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, write_yaml
from tests.test_search_cli import (
    WAIT_S,
    _listening,
    archsearch_run,
    end_session,
    free_port,
    session_members,
    start,
    stop_head,
    wait_for,
)

pytestmark = pytest.mark.slow


def training_now(db: Path) -> int:
    """Trials a worker is training right now, read with plain sqlite3 while the driver writes."""
    query = (
        "SELECT count(*) FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
        "WHERE t.state = 'RUNNING' AND a.key = 'status' AND a.value_json = '\"training\"'"
    )
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def ray_node(ray: Path, *flags: str, cwd: Path) -> subprocess.Popen:
    """``ray start`` in the foreground, in a session of its own. RAY_AUTH_MODE=token: a node
    joining a head that turned token authentication on must send the token (which ``ray start
    --head`` wrote to ~/.ray/auth_token); a head without authentication accepts it too."""
    command = [str(ray), "start", "--block", "--num-cpus=1", "--disable-usage-stats", *flags]
    return start(command, cwd, RAY_AUTH_MODE="token")


def trial_actor_on(node: subprocess.Popen) -> bool:
    """Whether a Tune trial actor (process title ``ray::ImplicitFunc...``) runs on the node
    started by ``node`` (its processes share that session)."""
    for pid in session_members(node.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ImplicitFunc"):
                return True
    return False


def cluster_cpus(ray: Path, address: str) -> float:
    """The CPUs of the cluster's live nodes, as ``ray status`` reports them (0 if it cannot)."""
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    try:
        status = subprocess.run(
            [str(ray), "status", f"--address={address}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        ).stdout
    except subprocess.TimeoutExpired:
        return 0.0
    match = re.search(r"[\d.]+/([\d.]+) CPU", status)
    return float(match.group(1)) if match else 0.0


def test_a_lost_worker_node_loses_no_trial(tiny_inputs, tmp_path):
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    address = f"127.0.0.1:{port}"
    head = ray_node(
        ray,
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--include-dashboard=false",
        cwd=tmp_path,
    )
    worker = None
    try:
        wait_for(lambda: _listening(port), head, "the cluster's GCS port")
        worker = ray_node(ray, f"--address={address}", "--node-ip-address=127.0.0.1", cwd=tmp_path)
        wait_for(lambda: cluster_cpus(ray, address) >= 2, worker, "the worker node to join")
        # Trials of several seconds, so that the kill lands while both nodes train.
        slow = write_yaml(tmp_path / "slow.yaml", {**TINY_RECIPE, "token_budget": 131072})
        inputs = {**tiny_inputs, "evaluator": slow}
        db = tmp_path / "nodes.db"
        storage = f"sqlite:///{db}"
        extra = ("--trials", "5", "--workers", "2", "--sampler", "grid", "--address", address)
        run = start(archsearch_run(inputs, storage, *extra), tmp_path)
        wait_for(lambda: training_now(db) >= 2, run, "a trial training on each node")
        wait_for(lambda: trial_actor_on(worker), run, "a trial's actor on the worker node")
        time.sleep(3)  # into its training (a trial here takes several seconds)
        end_session(worker.pid)  # the worker node: its raylet, object store and workers
        output = run.communicate(timeout=WAIT_S * 3)[0]
    finally:
        if worker is not None:
            end_session(worker.pid)
        stop_head(head)
    assert run.returncode == 0, output
    assert "lost with their worker" in output
    assert "Traceback" not in output  # said in archsearch's words, not Tune's

    study = load_study(storage, "cli")
    trials = study.get_trials()
    assert trained_count(study) == 5
    trained = [t for t in trials if t.user_attrs.get("status") in TRAINED]
    assert all(t.user_attrs["status"] == "complete" for t in trained)
    duplicates = Counter(tuple(sorted(t.params.items())) for t in trained)
    assert max(duplicates.values()) == 1, "a candidate was trained twice"
    lost = [t for t in trials if t.user_attrs.get("reason") == LOST]
    assert lost, "the node died while a trial trained on it"
    for trial in lost:
        assert trial.user_attrs["status"] == "interrupted"
        retries = [t for t in trials if t.user_attrs.get("retry_of") == trial.number]
        assert len(retries) == 1 and retries[0].params == trial.params
        assert retries[0].user_attrs["status"] == "complete"
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert study.user_attrs["search_runs"][-1]["status"] == "done"
