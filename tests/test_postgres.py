"""A study in a real PostgreSQL server (issue #18): a search killed with kill -9 mid-way and run
again loses and duplicates nothing, and ``show``, ``export`` and the dashboard read it back.

The server is a throwaway one from the Debian package (``apt-get install postgresql``; .ci/run
installs it): initdb in a temporary folder, pg_ctl on a free port of 127.0.0.1 with no Unix
socket, trust authentication for the one local user it creates. PostgreSQL refuses to run as
root, so under root it runs as the package's ``postgres`` user. Where the server binaries are
not installed the test is skipped, saying so; it never installs or downloads anything itself.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from archsearch import ArchConfig
from archsearch.search.resume import TRAINED
from archsearch.search.study import load_study
from tests.conftest import TINY_RECIPE, write_yaml
from tests.test_search_cli import (
    WAIT_S,
    archsearch_run,
    check_resumed,
    end_session,
    free_port,
    start,
    wait_for,
)

pytestmark = pytest.mark.slow

SERVER_USER = "postgres"  # the Debian package's system user, for running the server under root
DB_USER = "archsearch"


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, or Debian's versioned folder."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for folder in reversed(folders):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def as_server_user(command: list[str]) -> list[str]:
    """``command`` as the unprivileged server user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL server for this module; its SQLAlchemy URL."""
    psycopg2 = pytest.importorskip(
        "psycopg2", reason="psycopg2 not installed (pip install -e '.[dev]' installs it)"
    )
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "apt-get install postgresql (see README, Development)"
        )
    if os.geteuid() == 0:
        try:
            server_user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root and there is no '{SERVER_USER}' user to run the server")
    folder = Path(tempfile.mkdtemp(prefix="archsearch-pg-"))  # not under pytest's root-only tmp
    data = folder / "data"
    if os.geteuid() == 0:
        os.chown(folder, server_user.pw_uid, server_user.pw_gid)
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k '' -c fsync=off"
    try:
        subprocess.run(
            as_server_user(
                [str(binaries / "initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "log")]
        subprocess.run(
            as_server_user([*pg_ctl, "-o", options, "-w", "-t", "60", "start"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        with contextlib.closing(
            psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, dbname="postgres")
        ) as connection:
            connection.autocommit = True
            connection.cursor().execute(f"CREATE DATABASE {DB_USER}")
        yield f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{DB_USER}"
    finally:
        subprocess.run(
            as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


def count(url: str, state: str) -> int:
    """Trials in ``state``, read with a plain connection while the driver writes."""
    import psycopg2

    address = url.split("@", 1)[1]  # 127.0.0.1:PORT/DB
    host_port, dbname = address.split("/")
    host, port = host_port.split(":")
    try:
        with contextlib.closing(
            psycopg2.connect(host=host, port=int(port), user=DB_USER, dbname=dbname)
        ) as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT count(*) FROM trials WHERE state = %s", (state,))
            return cursor.fetchone()[0]
    except psycopg2.Error:  # the schema is not created yet
        return 0


def api(base: str, path: str, server: subprocess.Popen) -> dict:
    """GET a dashboard API path, waiting for the server to start (up to WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with urllib.request.urlopen(base + path, timeout=30) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer {path}")
            time.sleep(0.3)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsearch", *args],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def test_kill_9_mid_search_then_resume_loses_and_duplicates_nothing(
    postgres_url, tiny_inputs, tmp_path
):
    # Trials of a few seconds, so that the kill lands while candidates are training.
    slow = write_yaml(tmp_path / "slow.yaml", {**TINY_RECIPE, "token_budget": 4096})
    inputs = {**tiny_inputs, "evaluator": slow}
    command = archsearch_run(
        inputs, postgres_url, "--trials", "5", "--workers", "2", "--sampler", "grid"
    )

    # kill -9 of the driver alone (as the OOM killer would) once a candidate has finished.
    first = start(command, tmp_path)
    try:
        wait_for(lambda: count(postgres_url, "COMPLETE") >= 1, first, "a complete trial")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=WAIT_S)
        assert count(postgres_url, "RUNNING") >= 1  # the kill left trials open

        second = start(command, tmp_path)
        output = second.communicate(timeout=WAIT_S * 2)[0]
        assert second.returncode == 0, output
    finally:
        end_session(first.pid)  # the killed driver's Ray, by pid
    assert count(postgres_url, "RUNNING") == 0

    study = load_study(postgres_url, "cli")
    trials = study.get_trials()
    check_resumed(study, 5)
    trained = [t for t in trials if t.user_attrs.get("status") in TRAINED]
    assert [run["status"] for run in study.user_attrs["search_runs"]] == ["killed", "done"]

    # Read back as a user would: show's JSON agrees with the study, export writes the best.
    shown = cli("show", "--study", "cli", "--storage", postgres_url, "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["cost"]["trained"] == 5
    front = {entry["number"] for entry in report["front"]}
    assert front and front <= {t.number for t in trained}
    out = tmp_path / "exports"
    exported = cli(
        "export", "--study", "cli", "--storage", postgres_url, "--trial", "best", "--out", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    files = [Path(line.removeprefix("wrote ")) for line in exported.stdout.splitlines()]
    best = next(t for t in trials if t.number == report["best"]["val_bpb"]["number"])
    assert ArchConfig.from_yaml(files[0]) == ArchConfig.from_dict(best.user_attrs["arch"])

    # And optuna-dashboard, through `archsearch dashboard`, serves every trial of it.
    port = free_port()
    local = ("--host", "127.0.0.1", "--port", str(port))
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "archsearch", "dashboard", "--storage", postgres_url, *local],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        summaries = api(f"http://127.0.0.1:{port}", "/api/studies", dashboard)["study_summaries"]
        (entry,) = [s for s in summaries if s["study_name"] == "cli"]
        detail = api(f"http://127.0.0.1:{port}", f"/api/studies/{entry['study_id']}", dashboard)
        assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in trials]
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
