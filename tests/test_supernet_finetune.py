"""The second scoring stage: inherited weights fine-tuned briefly, then scored
(archsearch/supernet/finetune.py), and how fidelity and the cache treat its settings."""

from __future__ import annotations

import pytest
import torch

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.space import SearchSpace
from archsearch.supernet.finetune import finetuned_bpb
from archsearch.supernet.scoring import inherited_bpb
from archsearch.supernet.store import ensure_supernet, load_supernet, supernet_key
from tests.test_supernet import RECIPE, SPACE, configs

TUNED = {**RECIPE, "supernet": {**RECIPE["supernet"], "finetune_steps": 6, "finetune_lr": 3e-3}}


def supernet_search_options(tmp_path, monkeypatch, *, trials: int, **settings):
    """A search of the micro space with TUNED's supernet and ``settings``, its finalists
    trained by the tiny brief recipe, on 2 workers, the supernet cached under ``tmp_path``."""
    from archsearch.search import SearchOptions
    from tests.conftest import TINY_PROFILE, TINY_RECIPE, write_yaml

    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    brief = write_yaml(tmp_path / "brief.yaml", TINY_RECIPE)
    supernet = {**TUNED["supernet"], "finalist_evaluator": str(brief), **settings}
    return SearchOptions(
        profile=str(write_yaml(tmp_path / "p.yaml", {**TINY_PROFILE, "budgets": {"macs": 2e5}})),
        space=str(write_yaml(tmp_path / "space.yaml", SPACE)),
        evaluator=str(write_yaml(tmp_path / "recipe.yaml", {**TUNED, "supernet": supernet})),
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        study="s",
        trials=trials,
        workers=2,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny supernet, trained and saved (cache in a temporary folder)."""
    space = SearchSpace.from_dict(SPACE)
    recipe = Recipe.from_dict(TUNED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        path = ensure_supernet(space, recipe)
    return space, recipe, load_supernet(path)[0]


def test_finetuning_trains_a_copy_and_repeats_exactly(trained):
    space, recipe, supernet = trained
    before = {name: tensor.clone() for name, tensor in supernet.weights.items()}
    for config in configs(space, 3):
        raw = inherited_bpb(supernet, config, recipe)
        tuned = finetuned_bpb(supernet, config, recipe)
        assert tuned < raw  # six steps on the corpus lower its validation loss
        assert finetuned_bpb(supernet, config, recipe) == tuned  # same batches, same steps
    for name, tensor in supernet.weights.items():  # the shared weights are left as they were
        torch.testing.assert_close(tensor, before[name], rtol=0, atol=0)


def test_a_vanishing_learning_rate_scores_the_inherited_weights(trained):
    space, recipe, supernet = trained
    still = Recipe.from_dict(
        {**TUNED, "supernet": {**TUNED["supernet"], "finetune_lr": 1e-12, "finetune_steps": 2}}
    )
    for config in configs(space, 3, seed=5):
        assert finetuned_bpb(supernet, config, still) == pytest.approx(
            inherited_bpb(supernet, config, recipe), abs=1e-6
        )


def test_finetune_settings_are_checked_and_leave_the_cache_key():
    space = SearchSpace.from_dict(SPACE)
    plain = Recipe.from_dict(RECIPE)
    tuned = Recipe.from_dict({**TUNED, "supernet": {**TUNED["supernet"], "shortlist": 4}})
    assert plain.supernet is not None and plain.supernet.finetune_steps == 0
    assert supernet_key(space, plain) == supernet_key(space, tuned)  # same weights: reused
    bad = {
        "shortlist": ({"shortlist": 4}, "finetune_steps"),
        "finetune_steps": ({"finetune_steps": -1}, None),
        "finetune_lr": ({"finetune_steps": 2, "finetune_lr": 0}, None),
    }
    for key, (settings, hint) in bad.items():
        with pytest.raises(InputError) as info:
            Recipe.from_dict({**RECIPE, "supernet": {**RECIPE["supernet"], **settings}})
        assert info.value.key == f"supernet.{key}"
        assert hint is None or hint in info.value.message


def test_fidelity_ranks_the_finetuned_scores_too(tmp_path, monkeypatch):
    from archsearch.fidelity import run_fidelity
    from archsearch.profiles import Profile
    from tests.conftest import TINY_PROFILE

    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    space = SearchSpace.from_dict(SPACE)
    profile = Profile.from_dict({**TINY_PROFILE, "budgets": {"macs": 2e5}})
    recipe = Recipe.from_dict(TUNED)
    report = run_fidelity(space, profile, recipe, configs=4, factor=2, workers=1, proxies=[])
    assert {"supernet", "supernet_finetuned", "brief_training"} <= set(report.correlations)
    supernet, _ = load_supernet(next((tmp_path / "cache").rglob("supernet.pt")))
    for result in report.results:
        config = ArchConfig.from_dict(result.arch)
        assert result.finetuned_bpb == finetuned_bpb(supernet, config, recipe)
        assert result.finetuned_bpb < result.supernet_bpb


@pytest.mark.slow
def test_run_picks_its_finalists_from_a_shortlist_scored_by_finetuning(
    ray_local, tmp_path, monkeypatch
):
    import io

    import optuna
    from rich.console import Console

    from archsearch.search import run_search
    from archsearch.search.finalists import SOURCE_ATTR, pick_finalists, run_finalists
    from archsearch.search.inputs import load_inputs
    from archsearch.search.shortlist import FINETUNED_ATTR

    options = supernet_search_options(tmp_path, monkeypatch, trials=8, shortlist=4)
    run_search(options)
    inputs = load_inputs(options)
    out = io.StringIO()
    assert run_finalists(options, inputs, "s", 2, Console(file=out, width=200)) is not None
    study = optuna.load_study(study_name="s", storage=options.storage)
    scores = {int(k): v for k, v in study.user_attrs[FINETUNED_ATTR].items()}
    # the shortlist is what the finalists' rule picks from the raw scores
    assert set(scores) == {t.number for t in pick_finalists(study, 4)}
    supernet, _ = load_supernet(next((tmp_path / "cache").rglob("supernet.pt")))
    for number, score in scores.items():  # each computed in a worker, recomputed here
        config = ArchConfig.from_dict(study.trials[number].user_attrs["arch"])
        assert score == finetuned_bpb(supernet, config, inputs.recipe)
    companion = optuna.load_study(study_name="s.trained", storage=options.storage)
    finalists = [t for t in companion.trials if SOURCE_ATTR in t.user_attrs]
    assert len(finalists) == 2
    for trial in finalists:
        assert trial.user_attrs["finetuned_bpb"] == scores[trial.user_attrs[SOURCE_ATTR]]
    best = min(scores, key=lambda n: scores[n])
    assert best in {t.user_attrs[SOURCE_ATTR] for t in finalists}

    before, again = len(companion.trials), io.StringIO()
    run_finalists(options, load_inputs(options), "s", 2, Console(file=again, width=200))
    assert "fine-tuning" in out.getvalue() and "fine-tuning" not in again.getvalue()
    assert len(optuna.load_study(study_name="s.trained", storage=options.storage).trials) == before
