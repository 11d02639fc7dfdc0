"""A training recipe that blends a zero-cost proxy into its score (``blend``): validated like any
key, measured by ``fidelity`` on the very runs of the unblended recipe, and searched with real
Ray Tune and Optuna. References come from the unblended runs and from the proxy called directly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import TINY_PROFILE, TINY_RECIPE, TINY_SPACE, write_yaml

from archsearch import ArchConfig
from archsearch.cli import main
from archsearch.errors import InputError
from archsearch.evaluate.proxies import PROXIES
from archsearch.evaluate.recipe import Recipe
from archsearch.fidelity import kendall_tau, run_fidelity
from archsearch.search import run_search
from archsearch.search.quality import (
    BLEND_ATTR,
    BLENDED,
    STUDY_ATTR,
    quality_from_attrs,
    quality_of,
)
from archsearch.search.study import load_study
from tests.test_fidelity import WIDE_SPACE, _inputs
from tests.test_report import show
from tests.test_search import by_status, options

WEIGHT = 0.01
BLENDED_RECIPE = {
    **TINY_RECIPE,
    "name": "tiny_blend",
    "blend": {"proxy": "synflow", "weight": WEIGHT},
}


@pytest.mark.parametrize(
    ("blend", "key"),
    [
        ({"proxy": "magic", "weight": 0.01}, "blend.proxy"),
        ({"proxy": "synflow", "weight": 0}, "blend.weight"),
        ({"proxy": "synflow", "weight": "much"}, "blend.weight"),
        ({"proxy": "synflow"}, "blend.weight"),
        ({"proxy": "synflow", "weight": 0.01, "extra": 1}, "blend.extra"),
        ("synflow", "blend"),
    ],
)
def test_a_bad_blend_names_its_key(tmp_path: Path, blend, key: str) -> None:
    path = write_yaml(tmp_path / "recipe.yaml", {**TINY_RECIPE, "blend": blend})
    assert main(["run", "--evaluator", str(path), "--space", "tiny_lm"]) == 2
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TINY_RECIPE, "blend": blend})
    assert info.value.key == key


def test_a_proxy_recipe_cannot_also_blend() -> None:
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**BLENDED_RECIPE, "proxy": "grad_norm"})
    assert info.value.key == "blend"


def test_a_blend_round_trips_and_leaves_training_alone() -> None:
    recipe = Recipe.from_dict(BLENDED_RECIPE)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.to_yaml_dict()["blend"] == {"proxy": "synflow", "weight": WEIGHT}
    plain = Recipe.from_dict({**TINY_RECIPE, "name": "tiny_blend"})
    assert recipe.training == plain and plain.training is plain
    quality = quality_of(recipe)
    assert quality.name == BLENDED and not quality.maximize and quality.trains
    assert quality.blend.score(3.0, 50.0) == pytest.approx(3.0 - WEIGHT * 50.0)
    assert quality_from_attrs({STUDY_ATTR: quality.to_dict()}) == quality  # as a study keeps it


def test_fidelity_scores_the_blend_on_the_unblended_runs(tmp_path: Path) -> None:
    """Every job of the blended measurement (another recipe name, too) is one the plain recipe
    already ran, read back from its journal; the brief score is bpb - weight x synflow, synflow
    as the proxy computes it."""
    space, profile, plain = _inputs()
    journal = tmp_path / "journal.jsonl"
    before = run_fidelity(space, profile, plain, configs=4, factor=2, journal=journal)
    blended = Recipe.from_dict(BLENDED_RECIPE)
    assert blended.name != plain.name
    report = run_fidelity(space, profile, blended, configs=4, factor=2, journal=journal)
    assert report.reused_jobs == 3 * 4  # nothing trained again
    config = ArchConfig.from_dict(report.results[0].arch)
    assert report.results[0].proxies["synflow"] == PROXIES["synflow"](config, plain)
    scores = []
    for result, alone in zip(report.results, before.results, strict=True):
        assert (result.short_bpb, result.long_bpb) == (alone.short_bpb, alone.long_bpb)
        scores.append(alone.short_bpb - WEIGHT * alone.proxies["synflow"])
        assert result.short_score == pytest.approx(scores[-1])
    longs = [r.long_bpb for r in before.results]
    assert report.correlations["brief_training"]["kendall_tau"] == pytest.approx(
        kendall_tau(scores, longs)
    )
    assert report.correlations["brief_val_bpb"] == before.correlations["brief_training"]
    assert report.recipe["blend"] == {"proxy": "synflow", "weight": WEIGHT}

    # Asked for no proxies, it still computes the one it blends.
    alone = run_fidelity(space, profile, blended, configs=4, factor=2, proxies=[])
    assert all(set(r.proxies) == {"synflow"} for r in alone.results)
    assert alone.correlations["brief_training"] == report.correlations["brief_training"]

    recipe_file = write_yaml(tmp_path / "recipe.yaml", {**BLENDED_RECIPE})
    argv = ["fidelity", f"--space={write_yaml(tmp_path / 'space.yaml', WIDE_SPACE)}"]
    argv += [f"--profile={write_yaml(tmp_path / 'profile.yaml', TINY_PROFILE)}"]
    argv += [f"--evaluator={recipe_file}", "--configs=4", "--factor=2", f"--save={journal}"]
    assert main([*argv, "--workers=1"]) == 0


@pytest.mark.slow
def test_a_blended_search_minimises_bpb_less_the_weighted_proxy(
    ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = {
        "space": write_yaml(tmp_path / "micro.yaml", TINY_SPACE),
        "profile": write_yaml(tmp_path / "micro_1M.yaml", TINY_PROFILE),
        "evaluator": write_yaml(tmp_path / "tiny_blend.yaml", BLENDED_RECIPE),
        "storage": f"sqlite:///{tmp_path / 'study.db'}",
    }
    summary = run_search(options(inputs, trials=5, scheduler="asha"))
    assert summary.ended == "done"
    study = load_study(inputs["storage"], "micro")
    assert study.user_attrs["objectives"][0] == BLENDED
    assert study.user_attrs[STUDY_ATTR]["blend"] == {"proxy": "synflow", "weight": WEIGHT}
    recipe = Recipe.from_dict(BLENDED_RECIPE)
    complete = by_status(study, "complete")
    assert complete
    for trial in complete:
        attrs = trial.user_attrs
        synflow = PROXIES["synflow"](ArchConfig.from_dict(attrs["arch"]), recipe)
        assert attrs[BLEND_ATTR] == pytest.approx(synflow)
        assert trial.values[0] == pytest.approx(attrs["val_bpb"] - WEIGHT * synflow)
        assert math.isfinite(attrs["val_bpb"]) and attrs["val_bpb"] > 0
        # The learning curve, which the scheduler reads, is in the blended score too.
        assert attrs["curve"][-1][BLENDED] == pytest.approx(trial.values[0])

    # The comparison table gives the blended score and, beside it, val_bpb alone.
    db = {"url": inputs["storage"]}
    report = json.loads(show(capsys, db, "micro", "--json"))
    rows = {row["name"]: row for row in report["comparison"]["rows"]}
    row = rows["Transformer"]  # a baseline: ASHA never stops it, so it is always complete
    trial = study.trials[row["trial"]]
    assert (row[BLENDED], row["val_bpb"]) == (trial.values[0], trial.user_attrs["val_bpb"])
    markdown = show(capsys, db, "micro", "--markdown").splitlines()
    header = next(line for line in markdown if "Mult-Adds" in line)
    assert f"| {BLENDED} | val_bpb |" in header


def test_asha_stops_trials_on_the_blended_score() -> None:
    from archsearch.search.schedulers import make_scheduler

    scheduler = make_scheduler("asha", Recipe.from_dict(BLENDED_RECIPE))
    assert (scheduler._metric, scheduler._mode) == (BLENDED, "min")  # Tune keeps them private
