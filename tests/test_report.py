"""``archsearch show`` and ``archsearch plot`` on a real tiny study (Optuna + Ray Tune + SQLite).

Reference values are computed here from the raw Optuna trials (brute-force dominance, plain
minima, the footprint formula written out) and compared with what the reports print.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import download_artifact, get_all_artifact_meta

from archsearch import load_profile
from archsearch.cli import main
from archsearch.report.architecture import compact_arch
from archsearch.report.artifacts import artifact_dir
from archsearch.report.footprint import ET_SEARCH_CO2_LBS, ET_SEARCH_GPU_HOURS, Assumptions
from archsearch.report.plots import Point, frontier, panels
from archsearch.search import SearchOptions, run_search
from tests.conftest import TINY_PROFILE, TINY_RECIPE, TINY_SPACE, write_yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def study_db(ray_local, tmp_path_factory):
    """One real search (its baselines included), and the same trials without the baselines, as
    a study from before baselines existed would be."""
    folder = tmp_path_factory.mktemp("report")
    inputs = {
        "profile": write_yaml(folder / "micro_1M.yaml", TINY_PROFILE),
        "space": write_yaml(folder / "micro.yaml", TINY_SPACE),
        "evaluator": write_yaml(folder / "tiny_brief.yaml", TINY_RECIPE),
    }
    url = f"sqlite:///{folder / 'study.db'}"
    options = {k: str(v) for k, v in inputs.items()}
    summary = run_search(SearchOptions(**options, storage=url, study="micro", trials=4, workers=2))
    searched = optuna.load_study(study_name="micro", storage=url)
    bare = optuna.create_study(
        study_name="no_baselines", storage=url, directions=searched.directions
    )
    for key, value in searched.user_attrs.items():
        bare.set_user_attr(key, value)
    bare.add_trials([t for t in searched.trials if "baseline" not in t.user_attrs])
    return {"url": url, "summary": summary, "profile": load_profile(inputs["profile"])}


def show(capsys, db, study: str, *flags: str) -> str:
    assert main(["show", "--study", study, "--storage", db["url"], *flags]) == 0
    return capsys.readouterr().out


def usable(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trained to the end within budget, from raw attributes and constraint values."""
    return [
        t
        for t in study.get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
        and t.user_attrs.get("status") == "complete"
        and all(c <= 0 for c in t.system_attrs["constraints"])
    ]


def brute_force_front(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    def dominates(a, b):
        return all(x <= y for x, y in zip(a.values, b.values, strict=True)) and a.values != b.values

    return {t.number for t in trials if not any(dominates(o, t) for o in trials)}


def test_show_json_front_baselines_best_and_cost(capsys, study_db):
    report = json.loads(show(capsys, study_db, "micro", "--json"))
    study = optuna.load_study(study_name="micro", storage=study_db["url"])
    trials = usable(study)
    budget = study_db["profile"].budgets["macs"]

    assert {row["number"] for row in report["front"]} == brute_force_front(trials)
    for row in report["front"]:
        assert row["status"] == "complete" and row["macs"] <= budget
    planned = study.user_attrs["baselines"]
    assert planned, "the search queues the reference designs"
    assert set(report["baselines"]) == set(planned)
    for name, row in report["baselines"].items():
        assert row["baseline"] == name
        assert study.trials[row["number"]].user_attrs["baseline"] == name
        assert row["macs"] == planned[name]["macs"]
    for index, name in enumerate(report["objectives"]):
        assert report["best"][name]["values"][name] == min(t.values[index] for t in trials)

    cost, summary = report["cost"], study_db["summary"]
    assert cost["cpu_s"] == pytest.approx(study.user_attrs["search_cpu_s"])
    assert cost["trained"] == summary.trained == 4
    assert cost["rejected"] == summary.rejected_infeasible + summary.rejected_invalid
    assert sum(cost["counts"].values()) == len(study.trials)


def test_comparison_rows_and_footprint(capsys, study_db):
    rows = json.loads(show(capsys, study_db, "micro", "--json"))["comparison"]["rows"]
    study = optuna.load_study(study_name="micro", storage=study_db["url"])
    by_name = {row["name"]: row for row in rows}
    planned = {"transformer": "Transformer", "lite_transformer": "Lite Transformer"}
    for name, label in planned.items():
        if name not in study.user_attrs["baselines"]:
            assert by_name[label]["note"] == "not run"
            continue
        trial = next(t for t in study.trials if t.user_attrs.get("baseline") == name)
        assert by_name[label]["macs"] == trial.user_attrs["macs"]
        assert by_name[label]["val_bpb"] == trial.values[0]

    searched = [t for t in usable(study) if "baseline" not in t.user_attrs]
    best = min(searched, key=lambda t: t.values[0])
    found = by_name["archsearch best"]
    assert found["trial"] == best.number and found["val_bpb"] == best.values[0]

    # The footprint formula, written out from the stated assumptions.
    a = Assumptions()
    kwh = study.user_attrs["search_cpu_s"] / 3600 * a.watts_per_cpu_core / 1000 * a.pue
    assert found["search"]["kwh"] == pytest.approx(kwh)
    assert found["search"]["co2_lbs"] == pytest.approx(kwh * a.lbs_co2_per_kwh)
    et = by_name["Evolved Transformer (as published)"]
    assert et["search"]["hours"] == ET_SEARCH_GPU_HOURS == 2.2e6
    assert et["search"]["co2_lbs"] == pytest.approx(ET_SEARCH_CO2_LBS) == 6.3e5
    assert et["search"]["co2_kg"] == pytest.approx(6.3e5 * 0.45359237)
    assert et["params"] is None and et["note"] == "n/a"
    assert found["et_ratio"] == pytest.approx(6.3e5 / (kwh * a.lbs_co2_per_kwh))


def test_markdown_and_terminal_views(capsys, study_db):
    markdown = show(capsys, study_db, "no_baselines", "--markdown")
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    comparison = [
        line
        for line in table
        if line.split("|")[1].strip().startswith(("Trans", "Lite", "archsearch", "Evolved"))
    ]
    assert len(comparison) == 4
    assert all(line.count("|") == 10 for line in comparison)  # 9 columns
    transformer, lite, _, et = comparison
    assert "not run" in transformer and "not run" in lite  # no baselines in this study
    assert et.count(" n/a |") == 3 and "2.20e+06 GPU h" in et
    assert "lbs/kWh" in markdown and "W per busy core" in markdown  # assumptions stated

    terminal = show(capsys, study_db, "no_baselines")
    for heading in ("Pareto front", "Baselines: none in this study", "Evolved Transformer"):
        assert heading in terminal


def test_terminal_tables_fit_80_columns_and_wide_shows_every_setting(capsys, study_db, monkeypatch):
    front = json.loads(show(capsys, study_db, "micro", "--json"))["front"]
    monkeypatch.setenv("COLUMNS", "80")
    terminal = show(capsys, study_db, "micro")
    assert max(len(line) for line in terminal.splitlines()) <= 80
    for row in front:  # each front row's architecture, compact, is in the table unbroken
        assert compact_arch(row["arch"]) in terminal
    assert "attention=" not in terminal

    wide = show(capsys, study_db, "micro", "--wide")
    flat = " ".join(wide.split())  # Rich wraps the long cells: compare without line breaks
    for row in front:
        assert f"heads={row['arch']['heads']}" in flat


def test_show_reads_without_writing_or_creating(capsys, study_db, tmp_path):
    db_file = Path(study_db["url"][len("sqlite:///") :])
    before = hashlib.sha256(db_file.read_bytes()).hexdigest()
    show(capsys, study_db, "micro", "--json")
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == before

    missing = tmp_path / "nowhere" / "study.db"
    assert main(["show", "--study", "micro", "--storage", f"sqlite:///{missing}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--storage" in error[0] and str(missing) in error[0]
    assert not missing.parent.exists()

    assert main(["show", "--study", "nope", "--storage", study_db["url"]]) == 2
    assert "micro, no_baselines" in capsys.readouterr().err


def test_plot_writes_png_and_html_and_attaches_them_once(capsys, study_db, tmp_path):
    from matplotlib.image import imread

    args = ["plot", "--study", "micro", "--storage", study_db["url"], "--out", str(tmp_path)]
    assert main(args) == 0
    assert main(args) == 0  # again: the same files are not attached twice
    capsys.readouterr()
    png, html = sorted(tmp_path.glob("*.png")), sorted(tmp_path.glob("*.html"))
    assert len(png) == len(html) == 1

    study = optuna.load_study(study_name="micro", storage=study_db["url"])
    metas = get_all_artifact_meta(study)
    assert sorted(m.filename for m in metas) == sorted([png[0].name, html[0].name])
    store = optuna.artifacts.FileSystemArtifactStore(str(artifact_dir(study_db["url"])))
    for meta in metas:
        copy = tmp_path / f"downloaded-{meta.filename}"
        download_artifact(artifact_store=store, file_path=str(copy), artifact_id=meta.artifact_id)
        assert copy.read_bytes() == (tmp_path / meta.filename).read_bytes()

    image = imread(png[0])
    assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01
    page = html[0].read_text()
    front = brute_force_front(usable(study))
    for number in front:
        assert f"trial {number}:" in page
    assert "Plotly.newPlot" in page
    assert "<script src=" not in page.replace(" ", "")  # plotly.js inline: works offline


def test_plot_panels_hold_the_two_dimensional_front(study_db):
    study = optuna.load_study(study_name="micro", storage=study_db["url"])
    (panel,) = panels(study)  # the tiny profile has one cost objective: MACs
    assert panel.metric == "macs" and panel.budget == study_db["profile"].budgets["macs"]
    points = {p.trial: p for p in panel.points}
    assert set(points) == {t.number for t in usable(study)}
    assert {p.trial for p in panel.points if p.baseline} == {
        t.number for t in study.trials if "baseline" in t.user_attrs
    }
    kept = {p.trial for p in frontier(panel.points)}
    for p in panel.points:  # kept iff no other point is at least as good on both and better on one
        beaten = any(
            q.cost <= p.cost
            and q.quality <= p.quality
            and (q.cost, q.quality) != (p.cost, p.quality)
            for q in panel.points
        )
        assert (p.trial in kept) == (not beaten) or math.isclose(p.cost, 0)


@pytest.mark.parametrize("maximize", [False, True])
def test_the_plotted_front_keeps_every_copy_of_a_tied_point(maximize):
    # A repeated configuration scores the same; neither copy beats the other, so both stay, as
    # they do on the study's front. Dropping one made a proxy-study plot test fail when a
    # search happened to repeat a front configuration.
    sign = -1.0 if maximize else 1.0
    values = [(10.0, 3.0), (10.0, 3.0), (20.0, 2.0), (20.0, 2.5), (5.0, 4.0), (30.0, 2.0)]
    points = [
        Point(n, sign * quality, cost, False, None, "") for n, (cost, quality) in enumerate(values)
    ]
    assert [p.trial for p in frontier(points, maximize=maximize)] == [4, 0, 1, 2]


def test_missing_plot_libraries_are_named(study_db, tmp_path, monkeypatch):
    from archsearch.errors import InputError
    from archsearch.report.plots import plotly_figure, write_png

    study = optuna.load_study(study_name="micro", storage=study_db["url"])
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(InputError, match=r"archsearch\[report\]"):
        write_png(study, tmp_path / "x.png")
    with pytest.raises(InputError, match=r"archsearch\[report\]"):
        plotly_figure(study)
    assert not list(tmp_path.iterdir())
