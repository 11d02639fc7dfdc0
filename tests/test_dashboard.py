"""``archsearch dashboard`` serves a real study and its plots through optuna-dashboard's API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from archsearch.cli import main
from tests.conftest import copy_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def plotted_study(micro_study, tmp_path_factory):
    """The session's micro search, copied, with its Pareto plots attached (``archsearch plot``)."""
    folder = tmp_path_factory.mktemp("dashboard")
    url = copy_study(micro_study, folder)
    plots = folder / "plots"
    assert main(["plot", "--study", "micro", "--storage", url, "--out", str(plots)]) == 0
    return {"url": url, "plots": plots}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return response.read()


@pytest.fixture
def dashboard(plotted_study):
    """``archsearch dashboard`` in a subprocess on a free local port; stopped afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "archsearch.cli",
        "dashboard",
        "--storage",
        plotted_study["url"],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(base, "/api/meta")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"dashboard did not start: {output}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dashboard_serves_trials_values_and_plots(dashboard, plotted_study):
    study = optuna.load_study(study_name="micro", storage=plotted_study["url"])
    summaries = json.loads(get(dashboard, "/api/studies"))["study_summaries"]
    (entry,) = [s for s in summaries if s["study_name"] == "micro"]
    detail = json.loads(get(dashboard, f"/api/studies/{entry['study_id']}"))

    served = {t["number"]: t for t in detail["trials"]}
    assert set(served) == {t.number for t in study.trials}
    for trial in study.trials:
        if trial.values is not None:
            assert served[trial.number]["values"] == pytest.approx(trial.values)
        # Budgets reach the dashboard (its Pareto view reads the legacy constraints list).
        assert served[trial.number]["constraints"] == pytest.approx(
            trial.system_attrs["constraints"]
        )

    artifacts = {a["filename"]: a for a in detail["artifacts"]}
    files = {p.name: p for p in plotted_study["plots"].iterdir()}
    assert set(artifacts) == set(files) and len(files) == 2
    for name, artifact in artifacts.items():
        body = get(dashboard, f"/artifacts/{entry['study_id']}/{artifact['artifact_id']}")
        assert body == files[name].read_bytes()
    assert artifacts[next(n for n in files if n.endswith(".png"))]["mimetype"] == "image/png"


def test_dashboard_refuses_a_missing_database(tmp_path, capsys):
    missing = Path(tmp_path) / "nothing" / "study.db"
    assert main(["dashboard", "--storage", f"sqlite:///{missing}", "--port", "1"]) == 2
    assert "--storage" in capsys.readouterr().err
    assert not missing.parent.exists()
