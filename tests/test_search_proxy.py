"""A search whose quality is a zero-cost proxy: maximised, never trained, read back the right way
by ``show``, ``plot`` and ``export`` (real Ray Tune, Optuna, SQLite and torch).

References are computed here from the raw trials and from the proxy itself, called directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
import yaml

from archsearch import ArchConfig
from archsearch.cli import main
from archsearch.errors import InputError
from archsearch.evaluate.proxies import PROXIES
from archsearch.evaluate.recipe import load_recipe
from archsearch.report.comparison import compare
from archsearch.report.plots import panels
from archsearch.report.summary import summarize
from archsearch.search import run_search
from archsearch.search import trials as select
from archsearch.search.quality import DEFAULT_QUALITY, MAXIMIZE, MINIMIZE, STUDY_ATTR
from archsearch.search.resume import trained_count
from archsearch.search.schedulers import make_scheduler
from archsearch.search.study import load_study
from archsearch.search.trials import front_trials
from tests.conftest import TINY_PROFILE, TINY_RECIPE, TINY_SPACE, write_yaml
from tests.test_export import export
from tests.test_report import show, usable
from tests.test_search import by_status, options
from tests.test_search_front import dashboard, get_json

pytestmark = pytest.mark.slow

COMPLETE, PRUNED, FAIL = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)
TRAINING_KEYS = ("token_budget", "optimizer", "schedule", "grad_clip", "eval_tokens", "eval_points")
# TINY_RECIPE's data and batch, scored by grad_norm instead of trained (training keys left out).
PROXY_RECIPE = {
    **{k: v for k, v in TINY_RECIPE.items() if k not in TRAINING_KEYS},
    "name": "tiny_grad_norm",
    "proxy": "grad_norm",
}
NAME = "proxy_grad_norm"


def sign(direction: str) -> float:
    return -1.0 if direction == MAXIMIZE else 1.0


def front_by_brute_force(trials: list, directions: list[str]) -> set[int]:
    """Non-dominated trials, each objective turned so that lower is better."""

    def turned(trial):
        return [sign(d) * v for d, v in zip(directions, trial.values, strict=True)]

    def dominates(a, b):
        x, y = turned(a), turned(b)
        return all(p <= q for p, q in zip(x, y, strict=True)) and x != y

    return {t.number for t in trials if not any(dominates(o, t) for o in trials)}


@pytest.fixture(scope="module")
def proxy_db(ray_local, tmp_path_factory):
    folder = tmp_path_factory.mktemp("proxy")
    inputs = {
        "space": write_yaml(folder / "micro.yaml", TINY_SPACE),
        "profile": write_yaml(folder / "micro_1M.yaml", TINY_PROFILE),
        "evaluator": write_yaml(folder / "tiny_grad_norm.yaml", PROXY_RECIPE),
        "training": write_yaml(folder / "tiny_brief.yaml", TINY_RECIPE),
        "storage": f"sqlite:///{folder / 'study.db'}",
    }
    summary = run_search(options(inputs, trials=6))
    return {"inputs": inputs, "url": inputs["storage"], "summary": summary}


def test_a_proxy_search_maximises_the_proxy_of_untrained_candidates(proxy_db):
    inputs = proxy_db["inputs"]
    study = load_study(proxy_db["url"], "micro")
    assert proxy_db["summary"].ended == "done" and trained_count(study) == 6

    # Optuna (and so optuna-dashboard) maximise the proxy and minimise the cost.
    max_, min_ = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE
    assert study.directions == [max_, min_]
    assert study.user_attrs["objectives"] == [NAME, "macs"]
    recorded = {"name": NAME, "direction": MAXIMIZE, "proxy": "grad_norm"}
    assert study.user_attrs[STUDY_ATTR] == recorded
    with dashboard(proxy_db["url"]) as base:
        summaries = get_json(f"{base}/api/studies")["study_summaries"]
        study_id = next(s["study_id"] for s in summaries if s["study_name"] == "micro")
        detail = get_json(f"{base}/api/studies/{study_id}")
    assert detail["directions"] == ["maximize", "minimize"]
    assert detail["objective_names"] == [NAME, "macs"]
    assert {t["number"] for t in detail["best_trials"]} == {t.number for t in study.best_trials}

    recipe = load_recipe(inputs["evaluator"])
    complete = by_status(study, "complete")
    assert {t.user_attrs.get("baseline") for t in complete} >= {"transformer", "lite_transformer"}
    for trial in complete:
        attrs = trial.user_attrs
        expected = PROXIES["grad_norm"](ArchConfig.from_dict(attrs["arch"]), recipe)
        assert trial.values[0] == pytest.approx(expected, rel=1e-9, abs=0.0)
        assert trial.values[1] == attrs["macs"]
        assert attrs["data_fingerprint"] == study.user_attrs["data_fingerprint"]
        assert attrs["wall_s"] > 0
        # Nothing was trained: no learning curve, no training figures.
        assert not {"curve", "tokens", "steps", "train_bpb"} & set(attrs)
    for trial in by_status(study, "infeasible"):  # rejected by the driver, never scored
        assert trial.state == PRUNED and "wall_s" not in trial.user_attrs
    for trial in by_status(study, "duplicate"):
        assert trial.values == study.trials[trial.user_attrs["duplicate_of"]].values

    # Continuing this study with a training recipe would mix two qualities: refused, unchanged.
    before = len(study.trials)
    with pytest.raises(InputError, match=f"{NAME} \\(maximize\\)") as info:
        run_search(options(inputs, trials=7, evaluator=str(inputs["training"])))
    assert info.value.key == "--study" and "val_bpb (minimize)" in str(info.value)
    assert len(load_study(proxy_db["url"], "micro").trials) == before


def test_show_and_export_take_the_highest_proxy_as_best(capsys, proxy_db, tmp_path):
    study = load_study(proxy_db["url"], "micro")
    trials = usable(study)
    best = max(trials, key=lambda t: t.values[0])
    searched = [t for t in trials if "baseline" not in t.user_attrs]
    best_searched = max(searched, key=lambda t: t.values[0])
    assert select.best_trial(study).number == best.number

    report = json.loads(show(capsys, proxy_db, "micro", "--json"))
    assert report["directions"] == {NAME: MAXIMIZE, "macs": MINIMIZE}
    assert report["best"][NAME]["number"] == best.number
    cheapest = min(t.values[1] for t in trials)
    assert report["best"]["macs"]["values"]["macs"] == cheapest
    front = front_by_brute_force(trials, [MAXIMIZE, MINIMIZE])
    assert {row["number"] for row in report["front"]} == front
    first = report["front"][0]  # best quality first: the highest proxy on the front
    assert first["values"][NAME] == max(study.trials[n].values[0] for n in front)

    rows = {row["name"]: row for row in report["comparison"]["rows"]}
    assert rows["archsearch best"]["trial"] == best_searched.number
    assert rows["archsearch best"][NAME] == best_searched.values[0]
    transformer = next(t for t in trials if t.user_attrs.get("baseline") == "transformer")
    assert rows["Transformer"][NAME] == transformer.values[0]
    assert any(f"highest {NAME}" in note for note in report["comparison"]["notes"])

    markdown = show(capsys, proxy_db, "micro", "--markdown")
    assert f"{NAME} (max)" in markdown and f"max {NAME}: {best.number}" in markdown
    assert "zero-cost proxy grad_norm" in markdown

    (path,) = export(capsys, proxy_db, tmp_path, "yaml")
    exported = yaml.safe_load(path.read_text())
    assert ArchConfig.from_yaml(path) == ArchConfig.from_dict(best.user_attrs["arch"])
    provenance = exported["provenance"]
    assert provenance["trial"] == best.number
    assert provenance["objectives"] == dict(zip([NAME, "macs"], best.values, strict=True))


def test_plots_put_the_highest_proxy_on_top_of_the_front(capsys, proxy_db, tmp_path):
    study = load_study(proxy_db["url"], "micro")
    (panel,) = panels(study)
    assert panel.quality.name == NAME and panel.quality.maximize
    kept = {p.trial for p in panel.frontier}
    for p in panel.points:  # kept iff no point is as cheap and at least as high, one strictly
        beaten = any(
            q.cost <= p.cost
            and q.quality >= p.quality
            and (q.cost, q.quality) != (p.cost, p.quality)
            for q in panel.points
        )
        assert (p.trial in kept) == (not beaten)

    args = ["plot", "--study", "micro", "--storage", proxy_db["url"], "--out", str(tmp_path)]
    assert main([*args, "--no-attach"]) == 0
    capsys.readouterr()
    (html,) = tmp_path.glob("*.html")
    assert NAME in html.read_text() and len(list(tmp_path.glob("*.png"))) == 1


def test_a_proxy_that_errors_or_is_not_finite_fails_the_candidate(ray_local, tmp_path):
    # synflow overflows float64 to NaN at 96 layers of width 64 (the flow of the absolute-valued
    # network grows by about e^6 per layer: 32 layers score 196) and cannot build an embedding of
    # 2**62 rows; 32 layers score normally.
    space = write_yaml(
        tmp_path / "two.yaml",
        {
            "name": "two",
            "task": "causal_lm",
            "fixed": {"max_seq_len": 32, "d_model": 64, "heads": 2, "ffn_ratio": 1},
            "params": {
                "n_layers": {"choice": [32, 96]},
                "vocab_size": {"choice": [256, 2**62]},
            },
        },
    )
    roomy = write_yaml(tmp_path / "roomy.yaml", {**TINY_PROFILE, "budgets": {"macs": 10**8}})
    recipe = write_yaml(tmp_path / "synflow.yaml", {**PROXY_RECIPE, "proxy": "synflow"})
    inputs = {"space": space, "profile": roomy, "evaluator": recipe}
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    summary = run_search(
        options({**inputs, "storage": storage}, trials=5, sampler="grid", study="synflow")
    )
    study = load_study(storage, "synflow")
    assert summary.ended == "exhausted" and trained_count(study) == 4
    scored = [t for t in study.trials if t.user_attrs["status"] in ("complete", "failed")]
    outcome = {(t.params["n_layers"], t.params["vocab_size"]): t for t in scored}
    assert len(outcome) == len(scored) == 4  # each configuration scored once

    good = outcome[(32, 256)]
    value = PROXIES["synflow"](ArchConfig.from_dict(good.user_attrs["arch"]), load_recipe(recipe))
    assert good.state == COMPLETE and good.values[0] == pytest.approx(value, rel=1e-9)
    nan = outcome[(96, 256)]
    config = ArchConfig.from_dict(nan.user_attrs["arch"])
    assert math.isnan(PROXIES["synflow"](config, load_recipe(recipe)))
    assert nan.state == FAIL and nan.user_attrs["failure"] == "non_finite"
    assert nan.user_attrs["reason"] == "non-finite zero-cost proxy synflow score nan"
    for layers in (32, 96):
        broken = outcome[(layers, 2**62)]
        assert broken.state == FAIL and broken.user_attrs["failure"] == "error"
        assert broken.user_attrs["reason"].startswith("RuntimeError")
    assert {(t.params["n_layers"], t.params["vocab_size"]) for t in study.best_trials} == {
        (32, 256)
    }


def _hand_made_study(storage: str, name: str, directions: list[str], attrs: dict) -> optuna.Study:
    """Three feasible, complete trials with the values below, as the driver records them."""
    study = optuna.create_study(study_name=name, storage=storage, directions=directions)
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for number, (quality, macs) in enumerate(((3.0, 500.0), (2.0, 900.0), (4.0, 100.0))):
        study.add_trial(
            optuna.trial.create_trial(
                values=[quality, macs],
                user_attrs={"status": "complete", "macs": macs, "arch": {"n_layers": number + 1}},
                system_attrs={"constraints": [-1.0]},
            )
        )
    return study


def test_the_recorded_direction_decides_best_and_old_studies_read_as_val_bpb(tmp_path):
    storage = f"sqlite:///{tmp_path / 'hand.db'}"
    base = {"profile": {"name": "p", "budgets": {"macs": 1000}}, "constraint_names": ["macs"]}
    # As archsearch wrote studies before the quality was recorded: val_bpb, minimised.
    old = _hand_made_study(
        storage, "old", [MINIMIZE, MINIMIZE], {**base, "objectives": ["val_bpb", "macs"]}
    )
    assert select.quality(old) == DEFAULT_QUALITY
    assert select.best_trial(old).values[0] == 2.0
    assert summarize(old).best["val_bpb"].values["val_bpb"] == 2.0
    assert compare(old).rows[-2].to_dict()["val_bpb"] == 2.0  # "archsearch best", then ET
    # The same values in a study that recorded a maximised proxy: the other end is best.
    proxy = {"name": NAME, "direction": MAXIMIZE, "proxy": "grad_norm"}
    new = _hand_made_study(
        storage,
        "new",
        [MAXIMIZE, MINIMIZE],
        {**base, "objectives": [NAME, "macs"], STUDY_ATTR: proxy},
    )
    assert select.best_trial(new).values[0] == 4.0
    assert summarize(new).best[NAME].values[NAME] == 4.0
    assert compare(new).rows[-2].to_dict()[NAME] == 4.0
    # Trial 2 (4.0 at 100 MACs) dominates the rest when higher is better; not when lower is.
    assert [t.number for t in front_trials(new)] == [2]
    assert [t.number for t in front_trials(old)] == [1, 0, 2]  # lowest val_bpb first


def test_a_study_recording_no_known_direction_is_a_one_line_error(capsys, tmp_path):
    storage = f"sqlite:///{tmp_path / 'odd.db'}"
    odd = {"name": NAME, "direction": "sideways", "proxy": "grad_norm"}
    _hand_made_study(storage, "odd", [MAXIMIZE, MINIMIZE], {STUDY_ATTR: odd})
    assert main(["show", "--study", "odd", "--storage", storage]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--study" in error[0] and "sideways" in error[0]


def test_old_training_study_cannot_continue_with_a_proxy(tmp_path):
    inputs = {
        "space": write_yaml(tmp_path / "micro.yaml", TINY_SPACE),
        "profile": write_yaml(tmp_path / "micro_1M.yaml", TINY_PROFILE),
        "evaluator": write_yaml(tmp_path / "proxy.yaml", PROXY_RECIPE),
        "storage": f"sqlite:///{tmp_path / 'old.db'}",
    }
    _hand_made_study(
        inputs["storage"],
        "micro",
        [MINIMIZE, MINIMIZE],
        {"objectives": ["val_bpb", "macs"], "data_fingerprint": "whatever"},
    )
    with pytest.raises(InputError, match=r"measured val_bpb \(minimize\)") as info:
        run_search(options(inputs))
    assert info.value.key == "--study"


def test_train_refuses_a_proxy_recipe_and_no_scheduler_stops_a_proxy(capsys, tmp_path):
    config = tmp_path / "arch.yaml"
    config.write_text(ArchConfig.from_dict({"n_layers": 1, "d_model": 16, "heads": 2}).to_yaml())
    recipe = write_yaml(tmp_path / "proxy.yaml", PROXY_RECIPE)
    out = tmp_path / "out"
    argv = ["train", str(config), "--tokens", "4096", "--evaluator", str(recipe), "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--evaluator" in error[0] and "proxy" in error[0]
    assert not out.exists()
    assert make_scheduler("asha", load_recipe(recipe)) is None
    assert make_scheduler("asha", load_recipe(write_yaml(tmp_path / "t.yaml", TINY_RECIPE)))


def test_the_builtin_proxy_recipe_is_grad_norm_without_training_keys():
    recipe = load_recipe("proxy_grad_norm")
    assert recipe.scores_by_proxy and recipe.proxy == "grad_norm"
    text = Path(str(recipe.source)).read_text()
    assert not any(f"\n{key}:" in text for key in TRAINING_KEYS)
    lm_brief = load_recipe("lm_brief")  # scores the model lm_brief would start training from
    for key in ("task", "data", "tokenizer", "seq_len", "seed"):
        assert getattr(recipe, key) == getattr(lm_brief, key)
