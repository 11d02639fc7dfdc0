"""``archsearch confirm``: the t quantile and intervals, paired verdicts and their wording,
which front points are chosen, resumable seeded runs in the companion study, and ``show``'s
confirmed section, on real SQLite studies (the session's micro search for the runs)."""

from __future__ import annotations

import json
import shutil

import optuna
import pytest
import torch
from conftest import TINY_RECIPE, copy_study, write_tiny_inputs
from optuna.trial import TrialState

from archsearch.cli import main
from archsearch.confirm import verdict
from archsearch.confirm.runs import companion_name, trial_key
from archsearch.confirm.selection import select_models
from archsearch.evaluate.data import make_batches
from archsearch.evaluate.order import seeded_order
from archsearch.evaluate.recipe import Recipe
from archsearch.search import trial_attrs as attrs
from archsearch.search.trials import spread

# ---- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776), (0.975, 10, 2.228),
     (0.975, 30, 2.042), (0.995, 3, 5.841), (0.025, 2, -4.303)],
)  # fmt: skip
def test_t_quantile_matches_the_tables(p, df, expected):
    assert verdict.t_quantile(p, df) == pytest.approx(expected, abs=5e-4)


def test_mean_interval_is_the_t_interval():
    estimate = verdict.mean_interval([1.0, 2.0, 3.0])  # sd 1, n 3
    assert estimate.mean == 2.0
    assert estimate.half_width == pytest.approx(4.3027 / 3**0.5, abs=1e-4)
    one = verdict.mean_interval([1.5])
    assert (one.mean, one.low, one.high, one.half_width) == (1.5, None, None, None)


def test_pairing_by_seed_decides_what_two_means_cannot():
    """Seeds move both models together (shared data order): paired, the candidate wins
    clearly; the two means' intervals overlap, so an unpaired reading could not say."""
    candidate = {0: 5.00, 1: 6.00, 2: 7.00}
    baseline = {2: 7.08, 0: 5.10, 1: 6.12, 3: 1.0}  # seed 3 has no partner: ignored
    assert verdict.paired_differences(baseline, candidate) == pytest.approx([0.10, 0.12, 0.08])
    found = verdict.judge("trial 14", "Transformer", candidate, baseline, macs_ratio=0.45)
    assert found is not None and found.outcome == verdict.BEATS
    assert found.difference.mean == pytest.approx(0.10)
    assert found.detectable == pytest.approx(4.3027 * 0.02 / 3**0.5, abs=1e-4)
    apart = [verdict.mean_interval(list(runs.values())[:3]) for runs in (candidate, baseline)]
    assert apart[0].high > apart[1].low  # unpaired: the intervals overlap
    # pairing seeds the wrong way round loses the effect: the differences no longer agree
    shuffled = {0: 6.12, 1: 7.08, 2: 5.10}
    assert verdict.judge("t", "b", candidate, shuffled).outcome == verdict.TIED


def test_verdict_sentences():
    beats = verdict.judge(
        "trial 14",
        "Transformer",
        {0: 1.0, 1: 1.1, 2: 1.2},
        {0: 1.05, 1: 1.16, 2: 1.255},
        macs_ratio=0.45,
    )
    assert beats.sentence.startswith("trial 14 beats the Transformer by 0.055 bpb [")
    assert beats.sentence.endswith("at 45% of its MACs")
    tied = verdict.judge("trial 3", "Transformer", {0: 1.0, 1: 1.1}, {0: 1.05, 1: 1.05})
    assert tied.outcome == verdict.TIED
    assert tied.sentence.startswith("trial 3 cannot be told apart from the Transformer (+0 bpb [")
    worse = verdict.judge("trial 5", "Lite Transformer", {0: 1.2, 1: 1.31}, {0: 1.0, 1: 1.1})
    assert worse.outcome == verdict.WORSE
    assert worse.sentence.startswith("trial 5 is worse than the Lite Transformer by 0.205 bpb [")
    low, high = (float(x) for x in worse.sentence.split("[")[1].split("]")[0].split(", "))
    assert 0 < low < 0.205 < high
    one = verdict.judge("trial 5", "Transformer", {0: 1.0}, {0: 1.2})
    assert one.outcome == verdict.UNDECIDED and "no interval" in one.sentence
    assert verdict.judge("trial 5", "Transformer", {0: 1.0}, {1: 1.2}) is None


# ---- data order --------------------------------------------------------------------------------


def test_seed_changes_the_training_order_not_validation():
    batches = make_batches(Recipe.from_dict(dict(TINY_RECIPE)))
    assert seeded_order(batches, 0) is batches
    one, two = seeded_order(batches, 1), seeded_order(batches, 2)
    assert not torch.equal(one.train(0).inputs, batches.train(0).inputs)
    assert not torch.equal(one.train(0).inputs, two.train(0).inputs)
    assert torch.equal(one.train(1).inputs[:, 0], one.train(0).targets[:, -1])  # still streams
    assert torch.equal(one.valid(0).inputs, batches.valid(0).inputs)


# ---- selection -------------------------------------------------------------------------------


def test_spread_covers_the_cost_range_and_keeps_the_best():
    assert spread(10, 3, best=9) == [0, 4, 9]
    assert spread(10, 3, best=5) == [0, 5, 9]
    assert spread(10, 1, best=6) == [6]
    assert spread(3, 5, best=1) == [0, 1, 2]
    for best in range(7):
        chosen = spread(7, 3, best)
        assert len(chosen) == 3 and best in chosen and chosen[-1] - chosen[0] >= 4


def handmade_study(url: str) -> optuna.Study:
    """A real SQLite study as ``run`` records one: a 6-point front (quality falls as MACs
    grow), a dominated trial, an over-budget one, and both baselines."""
    study = optuna.create_study(study_name="hand", storage=url, directions=["minimize", "minimize"])
    study.set_user_attr("objectives", ["val_bpb", "macs"])
    study.set_user_attr("evaluator", dict(TINY_RECIPE))
    points = [(3.0 - 0.2 * k, 1e5 * (k + 1), None, -0.1) for k in range(6)]
    points += [(3.5, 5e5, None, -0.1), (1.0, 9e5, None, 0.5)]
    points += [(2.5, 3.5e5, "transformer", -0.1), (2.65, 2.5e5, "lite_transformer", -0.1)]
    for bpb, macs, baseline, constraint in points:
        recorded = {"status": "complete", "arch": {"d_model": 16}, "macs": macs}
        if baseline:
            recorded["baseline"] = baseline
        study.add_trial(
            optuna.trial.create_trial(
                values=[bpb, macs], user_attrs=recorded, system_attrs={"constraints": [constraint]}
            )
        )
    return study


def test_selection_spreads_over_the_front(tmp_path):
    study = handmade_study(f"sqlite:///{tmp_path / 'hand.db'}")
    models = select_models(study, top=3)
    # front candidates by MACs: trials 0..5; the best-quality one (5) always, then the spread
    assert [m.trial for m in models] == [0, 2, 5, 8, 9]
    assert [m.name for m in models[-2:]] == ["Transformer", "Lite Transformer"]
    assert models[2].score == pytest.approx(2.0)
    assert [m.trial for m in select_models(study, top=1)] == [5, 8, 9]
    # never the dominated trial 6 nor the over-budget trial 7, however many are asked for
    assert [m.trial for m in select_models(study, top=10)] == [0, 1, 2, 3, 4, 5, 8, 9]


# ---- command line: bad input -----------------------------------------------------------------


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'hand.db'}"
    handmade_study(url)
    empty = optuna.create_study(study_name="empty", storage=url)
    empty.set_user_attr("evaluator", dict(TINY_RECIPE))
    for args, says in [
        (["--study", "nope"], "no study 'nope'"),
        (["--study", "hand", "--top", "0"], "--top"),
        (["--study", "hand", "--seeds", "0"], "--seeds"),
        (["--study", "empty"], "no trial trained within budget"),
    ]:
        assert main(["confirm", "--storage", url, *args]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1


# ---- real runs on Ray --------------------------------------------------------------------------

FACTOR = 0.25  # 2 steps of the tiny recipe


def confirm(url: str, seeds: int) -> dict:
    from archsearch.confirm.flow import confirm_study

    return confirm_study(url, "micro", top=1, seeds=seeds, factor=FACTOR, workers=2)


def runs_of(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=companion_name("micro"), storage=url).get_trials()


@pytest.fixture(scope="module")
def confirmed(micro_study, tmp_path_factory):
    """The session's micro search, copied, confirmed once with 2 seeds."""
    folder = tmp_path_factory.mktemp("confirmed")
    url = copy_study(micro_study, folder)
    summary = confirm(url, seeds=2)
    return {"url": url, "db": folder / "study.db", "summary": summary}


def test_confirm_records_each_run_and_the_verdict(confirmed):
    summary, runs = confirmed["summary"], runs_of(confirmed["url"])
    models = summary["models"]
    assert {m["baseline"] for m in models} >= {None, "transformer"}
    assert len(runs) == 2 * len(models)
    assert all(t.state == TrialState.COMPLETE for t in runs)
    assert sorted(trial_key(t) for t in runs) == sorted(
        (m["trial"], seed, FACTOR) for m in models for seed in (0, 1)
    )
    for trial in runs:
        assert (
            trial.value == trial.user_attrs["val_bpb"] == trial.user_attrs["curve"][-1]["val_bpb"]
        )
        assert {"arch", "macs", "wall_s", "factor"} <= set(trial.user_attrs)
    # the stored comparisons are the verdict of the recorded runs, paired seed by seed
    by_model = {}
    for trial in runs:
        by_model.setdefault(trial.user_attrs[attrs.SOURCE_TRIAL], {})[
            trial.user_attrs[attrs.SEED]
        ] = trial.value
    for comparison in summary["comparisons"]:
        again = verdict.judge(
            "c",
            "b",
            by_model[comparison["candidate_trial"]],
            by_model[comparison["baseline_trial"]],
        )
        assert comparison["difference"]["mean"] == pytest.approx(again.difference.mean)
        assert comparison["outcome"] == again.outcome
    stored = optuna.load_study(study_name="micro", storage=confirmed["url"]).user_attrs
    assert stored["confirmed"]["comparisons"] == summary["comparisons"]


def test_show_has_the_confirmed_section(confirmed, capsys):
    url = confirmed["url"]
    assert main(["show", "--study", "micro", "--storage", url, "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "### Confirmed by seeded retraining" in out
    sentence = confirmed["summary"]["comparisons"][0]["sentence"]
    assert sentence in out and "archsearch best (confirmed)" in out
    assert main(["show", "--study", "micro", "--storage", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["confirmed"]["seeds"] == 2 and report["confirmed"]["factor"] == FACTOR
    assert report["comparison"]["rows"][2]["name"] == "archsearch best (confirmed)"


def test_the_confirmed_plot_is_attached_to_the_study_once(confirmed, tmp_path, capsys):
    from matplotlib.image import imread
    from optuna.artifacts import download_artifact, get_all_artifact_meta

    from archsearch.report.artifacts import artifact_dir, artifact_store

    url = confirmed["url"]
    study = optuna.load_study(study_name="micro", storage=url)
    runs = 2 * len(confirmed["summary"]["models"])
    name = f"micro-confirmed-{FACTOR:g}x-2seeds-{runs}runs.png"
    assert [m.filename for m in get_all_artifact_meta(study)].count(name) == 1
    # `plot` draws it again and does not attach a second copy
    assert main(["plot", "--study", "micro", "--storage", url, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    metas = [m for m in get_all_artifact_meta(study) if m.filename == name]
    assert len(metas) == 1
    store = artifact_store(artifact_dir(url))
    download_artifact(
        artifact_store=store, artifact_id=metas[0].artifact_id, file_path=str(tmp_path / "a.png")
    )
    image = imread(tmp_path / "a.png")
    assert image.shape[0] > 300 and image.shape[1] > 500


def test_seed_zero_runs_become_fidelity_references_that_fidelity_would_train(micro_study, tmp_path):
    """At a whole factor, each seed-0 run lands in the fidelity journal under the key of
    fidelity's long job for that configuration, with the bpb fidelity's own training of that
    job gives; a second confirm adds nothing twice."""
    from archsearch.confirm.flow import confirm_study
    from archsearch.confirm.references import reference_recipe
    from archsearch.fidelity import Journal, job_key, run_job

    url = copy_study(micro_study, tmp_path)
    journal = tmp_path / "references.jsonl"
    summary = confirm_study(url, "micro", top=1, seeds=1, factor=2, workers=2, references=journal)
    held = Journal(journal).read()
    assert len(held) == len(summary["models"])
    base = Recipe.from_dict(
        optuna.load_study(study_name="micro", storage=url).user_attrs["evaluator"]
    )
    reference = reference_recipe(base, 2)
    assert reference is not None and reference.token_budget == 2 * base.token_budget
    model = next(m for m in summary["models"] if m["baseline"] == "transformer")
    key = job_key("long", model["arch"], reference.replace(seed=base.seed), ())
    trained = run_job("long", model["arch"], reference, [])  # what fidelity itself would train
    assert held[key]["val_bpb"] == pytest.approx(trained["val_bpb"], abs=1e-6)
    assert held[key]["val_bpb"] == pytest.approx(model["estimate"]["mean"])

    confirm_study(url, "micro", top=1, seeds=1, factor=2, workers=2, references=journal)
    assert len(journal.read_text().splitlines()) == len(held)  # nothing appended twice
    assert reference_recipe(base, 2.5) is None and reference_recipe(base, 1) is None


def test_an_interrupted_confirm_continues_without_retraining(confirmed, tmp_path):
    """A confirm killed mid-run leaves a RUNNING run: the next one closes it as interrupted,
    trains it and the missing seed, and nothing that finished is trained again."""
    shutil.copyfile(confirmed["db"], tmp_path / "study.db")
    url = f"sqlite:///{tmp_path / 'study.db'}"
    before = {t.number: t.datetime_complete for t in runs_of(url)}
    models = confirmed["summary"]["models"]
    companion = optuna.load_study(study_name=companion_name("micro"), storage=url)
    killed = companion.ask()
    for key, value in {
        attrs.SOURCE_TRIAL: models[0]["trial"],
        attrs.SEED: 2,
        attrs.FACTOR: FACTOR,
    }.items():
        killed.set_user_attr(key, value)
    summary = confirm(url, seeds=3)
    runs = runs_of(url)
    complete = [t for t in runs if t.state == TrialState.COMPLETE]
    assert len(complete) == 3 * len(models)  # one per (model, seed): nothing twice
    assert len({trial_key(t) for t in complete}) == len(complete)
    assert {t.number: t.datetime_complete for t in complete if t.number in before} == before
    (closed,) = [t for t in runs if t.state == TrialState.FAIL]
    assert closed.number == killed.number and closed.user_attrs["status"] == "interrupted"
    assert all(len(m["runs"]) == 3 for m in summary["models"])
    confirm(url, seeds=3)  # all done: trains nothing, adds no trial
    assert len(runs_of(url)) == len(runs)


def test_run_confirm_chains_a_confirm_with_its_defaults(ray_local, tmp_path, capsys):
    """`run --confirm`: the search, then the confirm of its study (3 front candidates at most,
    both baselines, 3 seeds, 4x the budget) with the verdict printed and stored."""
    inputs = write_tiny_inputs(tmp_path)
    args = ["run", "--profile", str(inputs["profile"]), "--space", str(inputs["space"])]
    args += ["--evaluator", str(inputs["evaluator"]), "--storage", inputs["storage"]]
    args += ["--study", "chain", "--trials", "3", "--workers", "2", "--confirm"]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())  # undo Rich's wrapping
    summary = optuna.load_study(study_name="chain", storage=inputs["storage"]).user_attrs[
        "confirmed"
    ]
    assert (summary["seeds"], summary["factor"]) == (3, 4.0)
    models = summary["models"]
    assert {m["baseline"] for m in models} >= {None, "transformer"}
    assert sum(m["baseline"] is None for m in models) <= 3
    runs = optuna.load_study(study_name=companion_name("chain"), storage=inputs["storage"])
    complete = runs.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(trial_key(t) for t in complete) == sorted(
        (m["trial"], seed, 4.0) for m in models for seed in range(3)
    )
    assert summary["comparisons"] and all(c["sentence"] in out for c in summary["comparisons"])
    assert "prove the winner" not in out  # the hint to run confirm is not printed: it ran
