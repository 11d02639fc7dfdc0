"""Proxy fidelity: the rank correlations, the near-budget sampler, and a real tiny run."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_PROFILE, TINY_RECIPE, TINY_SPACE, write_yaml

from archsearch.cli import main
from archsearch.costs import estimate_costs
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.fidelity import (
    correlation,
    family,
    kendall_tau,
    kendall_tau_interval,
    rankdata,
    run_fidelity,
    sample_region,
    spearman,
)
from archsearch.profiles import Profile
from archsearch.space import SearchSpace

# A micro space whose [0.5M, 1M]-MAC region holds a few dozen configurations of two attention
# and two feed-forward families.
WIDE_SPACE = {
    "name": "micro_wide",
    "task": "causal_lm",
    "fixed": {"vocab_size": 256, "max_seq_len": 32, "heads": 2},
    "params": {
        "n_layers": {"int": [1, 3]},
        "d_model": {"choice": [16, 24, 32, 48, 64]},
        "ffn_ratio": {"choice": [1, 2, 3, 4]},
        "attention": {"choice": ["full", "local"]},
        "window": {"choice": [4, 8], "when": "attention == 'local'"},
        "ffn": {"choice": ["dense", "switch_moe"]},
        "experts": {"choice": [2], "when": "ffn == 'switch_moe'"},
    },
}


def _inputs() -> tuple[SearchSpace, Profile, Recipe]:
    return (
        SearchSpace.from_dict(WIDE_SPACE),
        Profile.from_dict(TINY_PROFILE),
        Recipe.from_dict(TINY_RECIPE),
    )


def _cli(tmp_path: Path) -> list[str]:
    """``archsearch fidelity`` on ``_inputs()``, written as the YAML files the command reads."""
    paths = {
        "space": write_yaml(tmp_path / "space.yaml", WIDE_SPACE),
        "profile": write_yaml(tmp_path / "profile.yaml", TINY_PROFILE),
        "evaluator": write_yaml(tmp_path / "recipe.yaml", TINY_RECIPE),
    }
    return ["fidelity", *(f"--{k}={v}" for k, v in paths.items())]


# ---- correlation functions -------------------------------------------------------------------


def test_rankdata_averages_ties() -> None:
    assert rankdata([10, 20, 20, 30]) == [1, 2.5, 2.5, 4]
    assert rankdata([3, 1, 2]) == [3, 1, 2]
    assert rankdata([5, 5, 5]) == [2, 2, 2]


def test_kendall_tau_on_hand_computed_cases() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # pairs (0,1) and (0,2) concordant, (1,2) discordant: (2 - 1) / 3
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # tau-b: one pair tied in x leaves 2 concordant of 3 pairs; denominator sqrt(2 * 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_spearman_on_hand_computed_cases() -> None:
    # no ties: 1 - 6 sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # ties: Pearson of the ranks [1.5, 1.5, 3] and [1, 2, 3]
    assert spearman([7, 7, 9], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 2, 3], [4, 4, 4]))


def test_correlations_are_symmetric_signed_and_rank_only() -> None:
    rng = random.Random(3)
    for _ in range(20):
        x = [rng.randint(0, 5) for _ in range(9)]  # small range: plenty of ties
        y = [rng.random() for _ in range(9)]
        for measure in (kendall_tau, spearman):
            value = measure(x, y)
            assert -1.0 <= value <= 1.0
            assert measure(y, x) == pytest.approx(value)
            assert measure(x, [-v for v in y]) == pytest.approx(-value)
            assert measure(x, [math.exp(3 * v) for v in y]) == pytest.approx(value)


def _matrix_references(x: list[float], y: list[float]) -> tuple[float, float]:
    """Independent formulas: tau-b from sign matrices, Spearman from comparison-count ranks."""
    tx, ty = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    sx = torch.sign(tx[:, None] - tx[None, :])
    sy = torch.sign(ty[:, None] - ty[None, :])
    tau = float((sx * sy).sum() / torch.sqrt((sx * sx).sum() * (sy * sy).sum()))

    def ranks(t: torch.Tensor) -> torch.Tensor:
        below = (t[None, :] < t[:, None]).sum(1)
        equal = (t[None, :] == t[:, None]).sum(1) - 1
        return 1 + below + equal / 2

    rho = float(torch.corrcoef(torch.stack((ranks(tx), ranks(ty))))[0, 1])
    return tau, rho


def test_correlations_match_independent_matrix_formulas() -> None:
    rng = random.Random(7)
    for _ in range(30):
        x = [float(rng.randint(0, 4)) for _ in range(10)]
        y = [float(rng.randint(0, 6)) for _ in range(10)]
        tau, rho = _matrix_references(x, y)
        assert kendall_tau(x, y) == pytest.approx(tau)
        assert spearman(x, y) == pytest.approx(rho)


def test_correlations_match_scipy_when_installed() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(11)
    for _ in range(20):
        x = [rng.randint(0, 4) for _ in range(12)]
        y = [rng.randint(0, 6) for _ in range(12)]
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_correlation_leaves_out_undefined_values() -> None:
    out = correlation([1.0, 2.0, math.nan, 3.0, 4.0], [1.0, 2.0, 5.0, math.inf, 3.0])
    assert out["n"] == 3
    assert out["kendall_tau"] == kendall_tau([1, 2, 4], [1, 2, 3]) == 1.0
    with pytest.raises(ValueError):
        kendall_tau([1.0, math.nan], [1.0, 2.0])


def _correlated(n: int, r: float, rng: random.Random) -> tuple[list[float], list[float]]:
    """n draws of a bivariate normal with correlation r."""
    x = [rng.gauss(0, 1) for _ in range(n)]
    y = [r * a + math.sqrt(1 - r * r) * rng.gauss(0, 1) for a in x]
    return x, y


def test_tau_interval_is_a_point_for_identical_orders_and_reprints_the_same() -> None:
    x = [float(v) for v in range(12)]
    assert kendall_tau_interval(x, [v * v for v in x]) == (1.0, 1.0)
    assert kendall_tau_interval(x, [-v for v in x]) == (-1.0, -1.0)
    x, y = _correlated(12, 0.5, random.Random(3))
    assert kendall_tau_interval(x, y) == kendall_tau_interval(x, y)  # seeded
    low, high = kendall_tau_interval(x, y)
    assert -1 <= low <= kendall_tau(x, y) <= high <= 1
    assert correlation(x, y)["kendall_tau_interval"] == [low, high]


def test_tau_interval_narrows_with_more_configurations() -> None:
    rng = random.Random(5)
    widths = {}
    for n in (12, 96):
        x, y = _correlated(n, 0.6, rng)
        low, high = kendall_tau_interval(x, y, resamples=500)
        widths[n] = high - low
    assert widths[96] < widths[12] / 2  # about 1/sqrt(8) as wide


def test_tau_interval_covers_the_population_tau_about_as_often_as_it_claims() -> None:
    """For a bivariate normal the population Kendall tau is (2/pi) asin(r) (Greiner's
    relation), an independent reference: a 90% interval over 20 draws should cover it in
    roughly 90% of samples (percentile bootstraps run a little short at small n)."""
    r = 0.5
    truth = 2 / math.pi * math.asin(r)
    rng = random.Random(11)
    samples = 100
    covered = 0
    for _ in range(samples):
        x, y = _correlated(20, r, rng)
        low, high = kendall_tau_interval(x, y, resamples=300, level=0.9, seed=rng.randrange(10**6))
        covered += low <= truth <= high
    assert 0.78 <= covered / samples <= 0.99, covered


# ---- the sampler -----------------------------------------------------------------------------


def test_sampler_picks_distinct_feasible_configs_inside_the_region_across_families() -> None:
    space, profile, recipe = _inputs()
    budget = profile.budgets["macs"]
    chosen = sample_region(space, profile, recipe, 8, seed=1)
    assert len(chosen) == 8
    assert len({json.dumps(c.arch, sort_keys=True) for c in chosen}) == 8
    for candidate in chosen:
        config = candidate.config
        costs = estimate_costs(config, profile)
        assert costs.macs == candidate.macs
        assert budget / 2 <= costs.macs <= budget
        assert not profile.over_budget(costs)
        assert candidate.family == family(config)
    # Round-robin over families: all four (2 attention x 2 ffn) are in the region and in 8 picks.
    assert len({c.family for c in chosen}) == 4
    assert [c.macs for c in chosen] == sorted(c.macs for c in chosen)
    assert sample_region(space, profile, recipe, 8, seed=1) == chosen  # seeded
    assert sample_region(space, profile, recipe, 8, seed=2) != chosen


def test_sampler_says_when_the_region_is_too_small() -> None:
    space = SearchSpace.from_dict(TINY_SPACE)  # only a handful of configs in [0.5M, 1M]
    profile, recipe = Profile.from_dict(TINY_PROFILE), Recipe.from_dict(TINY_RECIPE)
    with pytest.raises(InputError) as info:
        sample_region(space, profile, recipe, 12)
    assert info.value.key == "--configs"
    no_macs = Profile.from_dict(
        {**TINY_PROFILE, "budgets": {"params": 10**6}, "objectives": ["params"]}
    )
    with pytest.raises(InputError) as info:
        sample_region(space, no_macs, recipe, 4)
    assert info.value.key == "--profile"


# ---- a real run ------------------------------------------------------------------------------


def _recomputed(report: dict[str, Any]) -> None:
    """Every reported correlation equals one recomputed from the per-config values."""
    results = report["results"]
    long_loss = [r["long_bpb"] for r in results]
    brief = report["correlations"]["brief_training"]
    assert brief["n"] == len(results)
    assert brief["kendall_tau"] == pytest.approx(
        kendall_tau([r["short_bpb"] for r in results], long_loss)
    )
    assert brief["spearman"] == pytest.approx(
        spearman([r["short_bpb"] for r in results], long_loss)
    )
    for name, values in report["correlations"].items():
        if name.startswith("proxy:"):
            scores = [r["proxies"][name.removeprefix("proxy:")] for r in results]
            expected = kendall_tau(scores, [-v for v in long_loss])
            assert values["kendall_tau"] == pytest.approx(expected)


def test_a_tiny_fidelity_run_reports_consistent_correlations() -> None:
    space, profile, recipe = _inputs()
    lines: list[str] = []
    report = run_fidelity(
        space, profile, recipe, configs=5, factor=2, workers=1, progress=lines.append
    )
    data = report.to_dict()
    json.dumps(data)  # plain JSON
    assert data["configs"] == 5 and len(data["results"]) == 5
    assert data["short_tokens"] == recipe.token_budget
    assert data["long_tokens"] == 2 * recipe.token_budget
    assert data["macs_low"] == data["macs_budget"] / 2
    assert set(data["correlations"]) == {
        "brief_training",
        "proxy:params",
        "proxy:synflow",
        "proxy:grad_norm",
        "proxy:jacob_cov",
    }
    for values in data["correlations"].values():
        assert -1.0 <= values["kendall_tau"] <= 1.0 and -1.0 <= values["spearman"] <= 1.0
    for result in data["results"]:
        assert result["failed"] == []
        assert 0 < result["long_bpb"] < 8 and 0 < result["short_bpb"] < 8
        assert result["long_bpb"] < result["short_bpb"]  # twice the training helps
        for kind, tokens in (("short", data["short_tokens"]), ("long", data["long_tokens"])):
            curve = result[f"{kind}_curve"]
            assert len(curve) == recipe.eval_points
            assert curve[-1] == {"tokens": tokens, "val_bpb": result[f"{kind}_bpb"]}
            assert [p["tokens"] for p in curve] == sorted({p["tokens"] for p in curve})
    _recomputed(data)
    assert len(lines) == 3 * 5 and lines[-1].startswith("[15/15]")
    assert data["wall_s"] > 0 and data["cpu_s"] > 0


@pytest.mark.slow
def test_cli_in_two_processes_matches_the_serial_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spawned one-thread workers give the very losses the in-process run gives."""
    space, profile, recipe = _inputs()
    serial = run_fidelity(space, profile, recipe, configs=4, factor=2, workers=1, proxies=[])
    argv = _cli(tmp_path)
    argv += ["--configs=4", "--factor=2", "--workers=2", "--proxies=none", "--json"]
    assert main(argv) == 0
    parallel = json.loads(capsys.readouterr().out)
    assert parallel["workers"] == 2
    assert [r["arch"] for r in parallel["results"]] == [r.arch for r in serial.results]
    for ours, theirs in zip(parallel["results"], serial.results, strict=True):
        assert ours["short_bpb"] == theirs.short_bpb and ours["long_bpb"] == theirs.long_bpb
    _recomputed(parallel)
    # And the plain-text report prints.
    assert main([*argv[:-1], "--workers=1"]) == 0
    text = capsys.readouterr().out
    assert "brief_training" in text and "Kendall tau" in text


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        ("--configs=2", "--configs"),
        ("--factor=1", "--factor"),
        ("--proxies=magic", "--proxies"),
        ("--reference-seeds=0", "--reference-seeds"),
        ("--sample-space=no_such_space", "no_such_space"),
        ("--brief-seeds=0", "--brief-seeds"),
        ("--supernet-seeds=0", "--supernet-seeds"),
        ("--supernet-seeds=2", "--supernet-seeds"),  # a training recipe has no supernet
    ],
)
def test_cli_rejects_bad_flags_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, key: str
) -> None:
    assert main([*_cli(tmp_path), flag]) == 2
    assert key in capsys.readouterr().err


def test_journal_resumes_an_interrupted_run_without_training_again(tmp_path: Path) -> None:
    """Half the jobs in the journal (plus a line cut short by a crash): the resumed report
    equals an uninterrupted one, and only the missing jobs run."""
    space, profile, recipe = _inputs()
    journal = tmp_path / "fidelity.jsonl"
    whole = run_fidelity(space, profile, recipe, configs=4, factor=2, journal=journal)
    lines = journal.read_text().splitlines()
    assert len(lines) == 3 * 4 and whole.reused_jobs == 0
    journal.write_text("\n".join(lines[:5]) + "\n" + lines[5][: len(lines[5]) // 2])
    said: list[str] = []
    resumed = run_fidelity(
        space, profile, recipe, configs=4, factor=2, journal=journal, progress=said.append
    )
    assert resumed.reused_jobs == 5
    assert sum("(from the journal)" in line for line in said) == 5
    assert _measured(resumed) == _measured(whole)
    assert resumed.correlations == whole.correlations
    # The journal now holds every job once more; a third run trains nothing.
    again = run_fidelity(space, profile, recipe, configs=4, factor=2, journal=journal)
    assert again.reused_jobs == 12 and again.correlations == whole.correlations
    # A different recipe is a different measurement: nothing is reused.
    other = recipe.replace(seed=recipe.seed + 1)
    fresh = run_fidelity(space, profile, other, configs=4, factor=2, proxies=[], journal=journal)
    assert fresh.reused_jobs == 0


def test_a_grown_space_is_measured_on_the_references_of_the_space_it_grew_from(
    tmp_path: Path,
) -> None:
    """A space that gained a choice draws another sample; drawn from the space as it was
    (``sample_space``), the same configurations come back and the journal trains nothing."""
    space, profile, recipe = _inputs()
    journal = tmp_path / "fidelity.jsonl"
    before = run_fidelity(space, profile, recipe, configs=4, factor=2, proxies=[], journal=journal)
    params = {**WIDE_SPACE["params"], "ffn": {"choice": ["dense", "switch_moe", "glu"]}}
    grown = SearchSpace.from_dict({**WIDE_SPACE, "name": "micro_grown", "params": params})
    drawn = [c.arch for c in sample_region(grown, profile, recipe, 4, seed=0)]
    assert drawn != [r.arch for r in before.results]  # the grown space's own sample differs
    again = run_fidelity(
        grown, profile, recipe, configs=4, factor=2, proxies=[], journal=journal, sample_space=space
    )
    assert [r.arch for r in again.results] == [r.arch for r in before.results]
    assert again.reused_jobs == 8 and again.correlations == before.correlations
    assert again.space == "micro_grown" and again.sample_space == "micro_wide"


def test_reference_seeds_average_runs_that_one_seed_runs_would_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two reference seeds: the first is the one-seed run's very job (read back), the second is
    the reference a recipe with the next seed trains; the report ranks by their mean and says
    how well the two agree."""
    space, profile, recipe = _inputs()
    journal = tmp_path / "fidelity.jsonl"
    one = run_fidelity(space, profile, recipe, configs=4, factor=2, proxies=[], journal=journal)
    two = run_fidelity(
        space, profile, recipe, configs=4, factor=2, proxies=[], journal=journal, reference_seeds=2
    )
    assert two.reused_jobs == 8 and two.reference_seeds == 2  # only the second seed trained
    following = recipe.replace(seed=recipe.seed + 1)
    nxt = run_fidelity(space, profile, following, configs=4, factor=2, proxies=[], journal=journal)
    assert nxt.reused_jobs == 4  # its references are the second seed's runs
    first = [r.long_runs[0] for r in two.results]
    second = [r.long_runs[1] for r in two.results]
    assert first == [r.long_bpb for r in one.results]
    assert second == [r.long_bpb for r in nxt.results]
    assert first != second  # the seed changes the run
    for result, alone, a, b in zip(two.results, one.results, first, second, strict=True):
        assert result.long_bpb == pytest.approx((a + b) / 2)
        assert result.short_bpb == alone.short_bpb
    repeat = two.correlations["reference_repeat"]
    assert repeat["kendall_tau"] == pytest.approx(kendall_tau(first, second))
    brief = [r.short_bpb for r in two.results]
    mean = [r.long_bpb for r in two.results]
    assert two.correlations["brief_training"]["kendall_tau"] == pytest.approx(
        kendall_tau(brief, mean)
    )
    assert "reference_repeat" not in one.correlations

    # The command re-prints it from the journal, with each seed's column, training nothing.
    argv = _cli(tmp_path)
    argv += ["--configs=4", "--factor=2", "--proxies=none", "--reference-seeds=2"]
    assert main([*argv, f"--save={journal}", "--workers=1"]) == 0
    text = capsys.readouterr().out
    assert "mean of 2 seeds" in text and "ref s1" in text and "12 jobs read back" in text
    assert "reference_repeat" in text


def test_brief_seeds_rank_each_seed_and_their_mean_with_the_runs_one_seed_runs_would_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two brief seeds: the first is the one-seed measurement's very runs (read back), the
    second the brief runs a recipe with the next seed trains; each seed is ranked on its own,
    and their mean score beside them, against the same references."""
    space, profile, recipe = _inputs()
    journal = tmp_path / "fidelity.jsonl"
    one = run_fidelity(space, profile, recipe, configs=4, factor=2, proxies=[], journal=journal)
    two = run_fidelity(
        space, profile, recipe, configs=4, factor=2, proxies=[], journal=journal, brief_seeds=2
    )
    assert two.reused_jobs == 8 and two.brief_seeds == 2  # only the second seed's 4 trained
    following = recipe.replace(seed=recipe.seed + 1)
    nxt = run_fidelity(space, profile, following, configs=4, factor=2, proxies=[], journal=journal)
    assert nxt.reused_jobs == 4  # its brief runs are the second seed's
    first = [r.short_runs[0] for r in two.results]
    second = [r.short_runs[1] for r in two.results]
    assert first == [r.short_bpb for r in one.results] == [r.short_bpb for r in two.results]
    assert second == [r.short_bpb for r in nxt.results]
    assert first != second  # the seed changes the run
    long_loss = [r.long_bpb for r in two.results]
    assert long_loss == [r.long_bpb for r in one.results]
    held = two.correlations
    assert held["brief_training"] == one.correlations["brief_training"]
    assert held["brief_training_s1"]["kendall_tau"] == pytest.approx(kendall_tau(second, long_loss))
    mean = [(a + b) / 2 for a, b in zip(first, second, strict=True)]
    assert held["brief_training_mean"]["kendall_tau"] == pytest.approx(kendall_tau(mean, long_loss))
    assert "brief_training_s1" not in one.correlations

    # The command re-prints it from the journal, with the mean's column, training nothing.
    argv = _cli(tmp_path)
    argv += ["--configs=4", "--factor=2", "--proxies=none", "--brief-seeds=2"]
    assert main([*argv, f"--save={journal}", "--workers=1"]) == 0
    text = capsys.readouterr().out
    assert "brief mean" in text and "12 jobs read back" in text
    taus = [held["brief_training"]["kendall_tau"], held["brief_training_s1"]["kendall_tau"]]
    assert f"over the 2 seeds its tau averages {sum(taus) / 2:.3f}" in text


def test_a_journal_keyed_the_old_way_is_still_reused(tmp_path: Path) -> None:
    """Journals written while keys held the recipe's name and description (sha256 of the
    sorted JSON of kind, arch, the whole recipe and, for proxies, their names) resume. Their
    proxy lines hold synflow's first definition (before it cut Performer's query and key
    paths): those are computed again, not read (the stale values here are marked -1)."""
    space, profile, recipe = _inputs()
    journal = tmp_path / "fidelity.jsonl"
    first = run_fidelity(space, profile, recipe, configs=4, factor=2, journal=journal)
    long_recipe = recipe.replace(token_budget=2 * recipe.token_budget)
    proxies = list(first.results[0].proxies)
    outcomes = [json.loads(line)["outcome"] for line in journal.read_text().splitlines()]
    old_lines = []
    for kind, used in (("long", long_recipe), ("short", recipe), ("proxies", recipe)):
        for result in first.results:
            what = {"kind": kind, "arch": result.arch, "recipe": asdict(used)}
            what["recipe"].pop("source")
            what["recipe"].pop("blend")
            what["recipe"].pop("supernet")  # journals of that time predate the key
            what["recipe"].pop("selection")  # and this one
            what["recipe"]["optimizer"]["betas"] = list(used.optimizer.betas)
            if kind == "proxies":
                what["proxies"] = proxies
            key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
            outcome = _outcome(kind, result)
            if kind == "proxies":
                outcome = {"proxies": dict.fromkeys(proxies, -1.0)}
            old_lines.append(json.dumps({"key": key, "outcome": outcome}))
    assert len(old_lines) == len(outcomes)
    journal.write_text("\n".join(old_lines) + "\n")
    again = run_fidelity(space, profile, recipe, configs=4, factor=2, journal=journal)
    assert again.reused_jobs == 8  # the 4 proxy jobs ran again
    assert _measured(again) == _measured(first)
    # Read once, the journal holds the new keys too: a renamed recipe finds every job.
    renamed = recipe.replace(name="renamed", description="the same training")
    assert (
        run_fidelity(space, profile, renamed, configs=4, factor=2, journal=journal).reused_jobs
        == 12
    )


def _outcome(kind: str, result: Any) -> dict[str, Any]:
    """A journal outcome as a job reports it, from a finished result."""
    if kind == "proxies":
        return {"proxies": result.proxies}
    return {
        "val_bpb": getattr(result, f"{kind}_bpb"),
        "wall_s": getattr(result, f"{kind}_wall_s"),
        "curve": getattr(result, f"{kind}_curve"),
    }


def _measured(report: Any) -> list[dict[str, Any]]:
    """What a fidelity run measured, without its wall-clock timings."""
    timings = ("short_wall_s", "long_wall_s")
    return [{k: v for k, v in asdict(r).items() if k not in timings} for r in report.results]


def test_fidelity_refuses_a_proxy_recipe() -> None:
    space, profile, recipe = _inputs()
    with pytest.raises(InputError) as info:
        run_fidelity(space, profile, recipe.replace(proxy="grad_norm"), configs=4, factor=2)
    assert info.value.key == "--evaluator"


def test_failing_candidates_are_reported_with_their_reason_and_time() -> None:
    """A candidate whose training diverges is a result saying why, not a crash or a 0 s nan."""
    space, profile, _ = _inputs()
    exploding = Recipe.from_dict(
        {**TINY_RECIPE, "optimizer": {**TINY_RECIPE["optimizer"], "lr": 1e6}, "grad_clip": 1e30}
    )
    lines: list[str] = []
    report = run_fidelity(
        space, profile, exploding, configs=4, factor=2, workers=1, proxies=[], progress=lines.append
    ).to_dict()
    for result in report["results"]:
        assert [reason.split(":")[0] for reason in result["failed"]] == ["long", "short"]
        assert all("became nan" in reason for reason in result["failed"])
        assert result["long_wall_s"] > 0 and result["short_wall_s"] > 0  # the time it took
    trained = [line for line in lines if " long " in line or " short " in line]
    assert len(trained) == 8
    for line in trained:
        assert "failed after " in line and "became nan at step" in line, line
    assert report["correlations"]["brief_training"]["n"] == 0
