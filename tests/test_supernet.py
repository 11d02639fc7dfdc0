"""The weight-sharing supernet: every configuration of a space is a sub-network of one set of
weights, and the ordinary model extracted from it computes exactly what the supernet does.

Checked against independent references: the extracted model's output against the supernet's
own forward, its parameter count against the analytic count, which tensors a family's loss
reaches, an interrupted training against an uninterrupted one, and a real search through
Optuna and Ray Tune.
"""

from __future__ import annotations

import dataclasses
import io
import random
from pathlib import Path

import optuna
import pytest
import torch

from archsearch import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe, load_recipe
from archsearch.space import SearchSpace, load_space
from archsearch.supernet.model import Supernet, probe_configs, sample_config, storage_name
from archsearch.supernet.scoring import inherited_bpb
from archsearch.supernet.sharing import check_shareable, shared_name
from archsearch.supernet.store import ensure_supernet, load_supernet, supernet_dir
from tests.conftest import TINY_PROFILE, TINY_RECIPE, write_yaml

FAMILIES = ["full", "local", "linformer", "performer", "lsh", "lsra"]
FFNS = ["dense", "switch_moe", "sparse"]
SPACE = {
    "name": "micro_oneshot",
    "task": "causal_lm",
    "fixed": {"vocab_size": 256, "max_seq_len": 32},
    "params": {
        "n_layers": {"int": [1, 3]},
        "d_model": {"choice": [16, 32]},
        "embed_dim": {"choice": [None, 8]},
        "heads": {"choice": [2, 4], "per_layer": True},
        "attention": {"choice": FAMILIES, "per_layer": True},
        "window": {"choice": [4, 8], "when": "attention == 'local'", "per_layer": True},
        "linformer_k": {"choice": [8, 16], "when": "attention == 'linformer'", "per_layer": True},
        "performer_features": {
            "choice": [8, 16],
            "when": "attention == 'performer'",
            "per_layer": True,
        },
        "lsh_bucket_size": {"choice": [4, 8], "when": "attention == 'lsh'", "per_layer": True},
        "lsra_split": {
            "float": [0.25, 0.75],
            "step": 0.25,
            "when": "attention == 'lsra'",
            "per_layer": True,
        },
        "conv_kernel": {"choice": [3, 5], "when": "attention == 'lsra'", "per_layer": True},
        "ffn": {"choice": FFNS, "per_layer": True},
        "ffn_ratio": {"choice": [1, 2], "per_layer": True},
        "experts": {"choice": [2, 4], "when": "ffn == 'switch_moe'", "per_layer": True},
        "sparsity": {"choice": [2, 4], "when": "ffn == 'sparse'", "per_layer": True},
    },
    "constraints": [
        "d_model % heads == 0",
        "embed_dim == None or embed_dim < d_model",
        "attention != 'lsra' or d_model * lsra_split % (2 * heads) == 0",
        "d_model // heads % 2 == 0",
    ],
}
RECIPE = {
    **TINY_RECIPE,
    "name": "tiny_supernet",
    "supernet": {"token_budget": 4 * 128, "probes": 24, "score_tokens": 256},
}


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPACE)


@pytest.fixture(scope="module")
def supernet(space: SearchSpace) -> Supernet:
    torch.manual_seed(0)
    return Supernet.for_configs(probe_configs(space, 24))


def configs(space: SearchSpace, count: int, seed: int = 1):
    rng = random.Random(seed)
    return [sample_config(space, rng) for _ in range(count)]


def test_extracted_model_computes_what_the_supernet_computes(space, supernet):
    tokens = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    supernet.eval()
    seen = set()
    for config in configs(space, 12):
        seen |= {layer.attention for layer in config.layers} | {x.ffn for x in config.layers}
        with torch.no_grad():
            inside = supernet(config, tokens)
            alone = supernet.extract(config).eval()(tokens)
        torch.testing.assert_close(alone.logits, inside.logits, rtol=0, atol=0)
        torch.testing.assert_close(alone.aux_loss, inside.aux_loss, rtol=0, atol=0)
    assert seen >= set(FAMILIES) | set(FFNS) - {"lsh"}  # the sample meets (nearly) every family


def test_extracted_parameters_equal_the_analytic_count(space, supernet):
    for config in configs(space, 12, seed=2):
        model = supernet.extract(config)
        assert sum(p.numel() for p in model.parameters()) == estimate_costs(config).params


def test_biases_and_post_norm_blocks_are_sub_networks_too():
    """fairseq-style blocks (HAT's): biases are leading slices like the weights they go with."""
    fairseq = SearchSpace.from_dict(
        {
            "name": "fairseq_oneshot",
            "task": "causal_lm",
            "fixed": {"vocab_size": 64, "max_seq_len": 16},
            "params": {
                "n_layers": {"int": [1, 2]},
                "d_model": {"choice": [16, 32]},
                "heads": {"choice": [2, 4], "per_layer": True},
                "attention": {"choice": ["full", "local"], "per_layer": True},
                "window": {"choice": [4], "when": "attention == 'local'", "per_layer": True},
                "ffn_ratio": {"choice": [1, 2], "per_layer": True},
                "bias": {"choice": [True, False]},
                "norm": {"choice": ["pre", "post"]},
            },
            "constraints": ["d_model // heads % 2 == 0"],
        }
    )
    check_shareable(fairseq)
    torch.manual_seed(0)
    shared = Supernet.for_configs(probe_configs(fairseq, 12)).eval()
    tokens = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    seen = set()
    for config in configs(fairseq, 8):
        seen.add((config.bias, config.norm))
        model = shared.extract(config).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                model(tokens).logits, shared(config, tokens).logits, rtol=0, atol=0
            )
        assert sum(p.numel() for p in model.parameters()) == estimate_costs(config).params
    assert {bias for bias, _ in seen} == {True, False}
    assert {norm for _, norm in seen} == {"pre", "post"}


def test_attention_families_of_a_layer_share_its_projections_and_nothing_else(space, supernet):
    base = next(c for c in configs(space, 60, seed=3) if c.layers[0].attention == "full")
    settings = {"window": 4, "linformer_k": 8, "performer_features": 8, "lsh_bucket_size": 4}
    variants = {
        family: base.replace(
            layers=(
                dataclasses.replace(base.layers[0], attention=family, **settings),
                *base.layers[1:],
            )
        )
        for family in ("full", "local", "linformer", "performer", "lsh")
    }
    names = {
        family: {shared_name(n, c) for n, _ in supernet.extract(c).named_parameters()}
        for family, c in variants.items()
    }
    for family, held in names.items():
        assert "blocks.0.attn.proj.q.weight" in held, family
        assert "blocks.0.attn.proj.out.weight" in held, family
    assert "blocks.0.attn.linformer.e" in names["linformer"]
    assert not any(name.startswith("blocks.0.attn.linformer.") for name in names["full"])


def test_lsra_convolution_weights_follow_the_residual_channel_and_the_current_tap(space, supernet):
    """Two LSRA layers with different splits and kernels inherit, for the same residual
    channel, the same GLU value and gate rows and output weights, and the same weight for the
    current position's tap; leading slices would hand each split another channel's weights."""
    base = next(c for c in configs(space, 80, seed=5) if c.d_model == 32)

    def lsra(split: float, kernel: int) -> ArchConfig:
        layer = dataclasses.replace(
            base.layers[0], attention="lsra", heads=2, lsra_split=split, conv_kernel=kernel
        )
        return base.replace(layers=(layer, *base.layers[1:]))

    wide, narrow = lsra(0.25, 5), lsra(0.5, 3)  # conv branch from channel 8, and from 16
    one, two = supernet.extract(wide), supernet.extract(narrow)
    conv_one, conv_two = one.blocks[0].attn.conv, two.blocks[0].attn.conv
    for channel in (16, 20, 31):
        i, j = channel - 8, channel - 16  # the channel's index in each branch
        assert torch.equal(conv_one.out.weight[i, i], conv_two.out.weight[j, j])
        c1, c2 = conv_one.out.weight.shape[0], conv_two.out.weight.shape[0]
        assert torch.equal(conv_one.glu.weight[i, i], conv_two.glu.weight[j, j])  # value row
        assert torch.equal(conv_one.glu.weight[c1 + i, i], conv_two.glu.weight[c2 + j, j])  # gate
    # the current position is the last tap of each kernel; one step back the one before it
    assert torch.equal(conv_one.conv.weight[:, -1], conv_two.conv.weight[:, -1])
    assert torch.equal(conv_one.conv.weight[:, -2], conv_two.conv.weight[:, -2])


def test_a_sandwich_of_the_probes_reaches_every_shared_tensor(space, supernet):
    supernet.train()
    supernet.zero_grad()
    tokens = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))
    for config in probe_configs(space, 24):
        output = supernet(config, tokens)
        loss = torch.nn.functional.cross_entropy(output.logits.reshape(-1, 256), tokens.reshape(-1))
        (loss + output.aux_loss).backward()
    for name in supernet.shapes:
        grad = supernet.weights[storage_name(name)].grad
        assert grad is not None and grad.abs().sum() > 0, name


@pytest.mark.parametrize("step", range(10))
def test_dealt_families_train_every_family_of_every_layer_each_step(space, step):
    """With as many sub-networks as attention families, each step's sub-networks run every
    attention family in every layer they all reach (independent draws miss about a third), and
    the sandwich's bread stays the widest and the narrowest."""
    from archsearch.supernet.training import step_configs

    count = len(FAMILIES)
    ends = [None, None]
    dealt = step_configs(space, random.Random(f"0:{step}"), count - 2, ends, True)
    drawn = step_configs(space, random.Random(f"0:{step}"), count - 2, ends, False)
    for configs in (dealt, drawn):
        largest, smallest = configs[0], configs[1]
        assert (len(largest.layers), largest.d_model) == (3, 32)
        assert (len(smallest.layers), smallest.d_model) == (1, 16)
    assert {config.layers[0].attention for config in dealt} == set(FAMILIES)
    assert {config.layers[0].ffn for config in dealt} == set(FFNS)
    # the same draws undealt: families repeat within a step, so one at least is missed
    missed = [
        len(FAMILIES)
        - len(
            {
                c.layers[0].attention
                for c in step_configs(space, random.Random(f"{s}:x"), count - 2, ends, False)
            }
        )
        for s in range(10)
    ]
    assert sum(missed) > 0


def test_a_configuration_larger_than_the_supernet_is_refused(space, supernet):
    config = configs(space, 1)[0]
    wider = config.replace(d_model=64)
    with pytest.raises(RuntimeError, match="outside the space"):
        supernet.extract(wider)


def test_spaces_with_memory_or_seq2seq_are_refused_with_the_key():
    with pytest.raises(InputError) as info:
        check_shareable(load_space("efficient_lm"))
    assert info.value.key == "memory"
    with pytest.raises(InputError) as info:
        check_shareable(load_space("lite_transformer"))
    assert info.value.key == "task"
    check_shareable(load_space("oneshot_lm"))
    check_shareable(load_space("tiny_lm"))


def test_recipe_supernet_section_is_checked():
    Recipe.from_dict(RECIPE)
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**RECIPE, "supernet": {"token_budget": 100}})
    assert info.value.key == "supernet.token_budget"
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**RECIPE, "supernet": {"token_budget": 512, "sandwich": 2}})
    assert "unknown key" in info.value.message
    with pytest.raises(InputError):
        Recipe.from_dict({**RECIPE, "proxy": "synflow"})
    assert load_recipe("supernet_brief").supernet is not None


def test_interrupted_training_resumes_to_the_same_weights(space, tmp_path, monkeypatch):
    recipe = Recipe.from_dict(RECIPE)
    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "whole"))
    whole, _ = load_supernet(ensure_supernet(space, recipe, checkpoint_every=2))

    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cut"))

    def stop_at_three(step: int, steps: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_supernet(space, recipe, checkpoint_every=2, progress=stop_at_three)
    folder = supernet_dir(space, recipe)
    assert (folder / "checkpoint.pt").exists() and not (folder / "supernet.pt").exists()
    steps_run: list[int] = []
    path = ensure_supernet(
        space, recipe, checkpoint_every=2, progress=lambda s, n, loss: steps_run.append(s)
    )
    assert steps_run == [3, 4]  # resumed after the checkpoint at step 2
    resumed, record = load_supernet(path)
    assert record["step"] == 4
    for name in whole.shapes:
        key = storage_name(name)
        torch.testing.assert_close(resumed.weights[key], whole.weights[key], rtol=0, atol=0)

    mtime = path.stat().st_mtime_ns  # a second call reuses the cached supernet
    assert ensure_supernet(space, recipe, progress=lambda *a: pytest.fail("trained again"))
    assert path.stat().st_mtime_ns == mtime

    config = configs(space, 1)[0]
    score = inherited_bpb(resumed, config, recipe)
    assert 0 < score < 9  # bits per byte of byte-level text, untrained is about 8


@pytest.mark.slow
def test_a_search_scores_candidates_by_the_supernet(ray_local, tmp_path, monkeypatch):
    from archsearch.search import SearchOptions, run_search

    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    space_file = write_yaml(tmp_path / "space.yaml", SPACE)
    profile = write_yaml(tmp_path / "profile.yaml", {**TINY_PROFILE, "budgets": {"macs": 2e5}})
    brief = write_yaml(tmp_path / "brief.yaml", TINY_RECIPE)  # trains the finalists
    settings = {**RECIPE["supernet"], "finalist_evaluator": str(brief)}
    recipe_file = write_yaml(tmp_path / "recipe.yaml", {**RECIPE, "supernet": settings})
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    options = SearchOptions(
        profile=str(profile),
        space=str(space_file),
        evaluator=str(recipe_file),
        storage=storage,
        study="s",
        trials=8,
        workers=2,
    )
    run_search(options)
    study = optuna.load_study(study_name="s", storage=storage)
    scored = [t for t in study.trials if t.user_attrs.get("status") == "complete"]
    assert len(scored) == 8
    record = study.user_attrs["supernet"]
    saved, _ = load_supernet(Path(record["path"]))
    recipe = Recipe.from_dict(RECIPE)
    for trial in scored[:3]:  # the study's score is the inherited-weights bpb, recomputed here
        config = ArchConfig.from_dict(trial.user_attrs["arch"])
        assert trial.values[0] == pytest.approx(inherited_bpb(saved, config, recipe), abs=1e-9)
    assert "curve" not in scored[0].user_attrs

    # Second fidelity: the supernet front's finalists and the baselines, trained from scratch.
    from rich.console import Console

    from archsearch.search.finalists import SCORE_ATTR, SOURCE_ATTR, run_finalists
    from archsearch.search.inputs import load_inputs
    from archsearch.search.trials import front_trials

    brief = write_yaml(tmp_path / "brief.yaml", TINY_RECIPE)
    with_finalists = {
        **RECIPE,
        "supernet": {**RECIPE["supernet"], "finalist_evaluator": str(brief)},
    }
    write_yaml(recipe_file, with_finalists)
    console = Console(file=io.StringIO())
    summary = run_finalists(options, load_inputs(options), "s", 2, console)
    assert summary is not None and summary.study_name == "s.trained"
    companion = optuna.load_study(study_name="s.trained", storage=storage)
    trained = [
        t for t in companion.trials if t.user_attrs.get("status") in ("complete", "duplicate")
    ]
    finalists = [t for t in trained if SOURCE_ATTR in t.user_attrs]
    baselines = {t.user_attrs.get("baseline") for t in trained} - {None}
    assert len(finalists) == 2 and baselines == set(study.user_attrs["baselines"])
    front = {t.number: t for t in front_trials(study)}
    for trial in finalists:  # each came from the supernet front, its score kept beside it
        source = front[trial.user_attrs[SOURCE_ATTR]]
        assert trial.user_attrs[SCORE_ATTR] == source.values[0]
        assert trial.params == source.params
        assert "curve" in trial.user_attrs or trial.user_attrs["status"] == "duplicate"
    assert study.user_attrs["finalists"]["study"] == "s.trained"
    assert companion.user_attrs["supernet_study"] == "s"
    from archsearch.report.render import summary_markdown
    from archsearch.report.summary import TrialRow, summarize

    assert "| supernet_bpb |" in summary_markdown(summarize(companion))  # show's column
    assert TrialRow.of(companion, finalists[0]).supernet_bpb == finalists[0].user_attrs[SCORE_ATTR]
    before = len(companion.trials)
    run_finalists(options, load_inputs(options), "s", 2, console)  # resumed: nothing again
    assert len(optuna.load_study(study_name="s.trained", storage=storage).trials) == before


@pytest.mark.slow
def test_fidelity_ranks_the_supernet_against_the_references_a_training_recipe_made(
    tmp_path, monkeypatch
):
    # The supernet recipe's references are its from-scratch training runs: the same jobs as a
    # training recipe with the same training keys, read back from that recipe's journal.
    from archsearch.fidelity import kendall_tau, run_fidelity
    from archsearch.profiles import Profile

    monkeypatch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    space = SearchSpace.from_dict(SPACE)
    profile = Profile.from_dict({**TINY_PROFILE, "budgets": {"macs": 2e5}})
    journal = tmp_path / "journal.jsonl"
    common = {"configs": 4, "factor": 2, "workers": 1, "proxies": [], "journal": journal}
    trained = run_fidelity(space, profile, Recipe.from_dict(TINY_RECIPE), **common)
    assert "supernet" not in trained.correlations
    recipe = Recipe.from_dict(RECIPE)
    report = run_fidelity(space, profile, recipe, **common)
    assert report.reused_jobs == 8  # 4 brief + 4 reference runs, none trained again
    assert "supernet" in report.correlations and "brief_training" in report.correlations
    saved, _ = load_supernet(supernet_dir(space, recipe) / "supernet.pt")
    for mine, theirs in zip(report.results, trained.results, strict=True):
        assert mine.long_bpb == theirs.long_bpb and mine.short_bpb == theirs.short_bpb
        config = ArchConfig.from_dict(mine.arch)
        assert mine.supernet_bpb == pytest.approx(inherited_bpb(saved, config, recipe), abs=1e-9)

    # Two supernet trainings: the first is the one above (cached, not trained again), the
    # second the supernet of the recipe with the next seed, scored on the first's bytes.
    twice = run_fidelity(space, profile, recipe, **common, supernet_seeds=2)
    assert twice.reused_jobs == 8 and twice.supernet_seeds == 2
    other, _ = load_supernet(
        supernet_dir(space, recipe.replace(seed=recipe.seed + 1)) / "supernet.pt"
    )
    long_loss = [r.long_bpb for r in twice.results]
    for mine, once in zip(twice.results, report.results, strict=True):
        config = ArchConfig.from_dict(mine.arch)
        assert mine.supernet_runs[0] == mine.supernet_bpb == once.supernet_bpb
        assert mine.supernet_runs[1] == pytest.approx(
            inherited_bpb(other, config, recipe), abs=1e-9
        )
    first = [r.supernet_runs[0] for r in twice.results]
    second = [r.supernet_runs[1] for r in twice.results]
    assert first != second  # another training, other weights
    held = twice.correlations
    assert held["supernet"] == report.correlations["supernet"]
    assert held["supernet_s1"]["kendall_tau"] == pytest.approx(kendall_tau(second, long_loss))
    mean = [(a + b) / 2 for a, b in zip(first, second, strict=True)]
    assert held["supernet_mean"]["kendall_tau"] == pytest.approx(kendall_tau(mean, long_loss))
    assert "supernet_s1" not in report.correlations


def test_finalists_come_from_the_better_scored_half_of_the_front(tmp_path):
    # A supernet front of 8 points whose score improves with MACs, a dominated trial and a
    # baseline: 3 finalists from the better half (trials 4-7), the best (7) always among them;
    # more than the front holds: the rest filled in best-scored first, baselines never.
    from archsearch.search.finalists import pick_finalists, queue_finalists

    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["minimize", "minimize"])
    study.set_user_attr("objectives", ["supernet_bpb", "macs"])
    points = [(4.5 - 0.05 * k, 1e6 * (k + 1), None) for k in range(8)]
    points += [(4.6, 3.5e6, None), (4.0, 9e6, "transformer")]
    for score, macs, baseline in points:
        attrs = {"status": "complete", "arch": {"d_model": 16}, "macs": macs}
        if baseline:
            attrs["baseline"] = baseline
        trial = optuna.trial.create_trial(
            params={"x": float(macs)},
            distributions={"x": optuna.distributions.FloatDistribution(0, 1e8)},
            values=[score, macs],
            user_attrs=attrs,
        )
        study.add_trial(trial)
    chosen = [t.number for t in pick_finalists(study, 3)]
    assert len(chosen) == 3 and 7 in chosen and set(chosen) <= {4, 5, 6, 7}
    assert min(chosen) == 4  # spread: the better half's cheap end too
    everything = [t.number for t in pick_finalists(study, 9)]
    assert sorted(everything) == list(range(9)) and 9 not in everything

    companion = optuna.create_study(
        study_name="s.trained", storage=url, directions=["minimize", "minimize"]
    )
    finalists = pick_finalists(study, 3)
    assert len(queue_finalists(companion, finalists)) == 3
    assert queue_finalists(companion, finalists) == []  # enqueued once, however often asked
    waiting = companion.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert sorted(t.user_attrs["supernet_trial"] for t in waiting) == sorted(chosen)


def test_sparsefinder_and_sparse_qkv_share_the_projections_and_train_in_the_supernet():
    """Both families keep full attention's projection names, so a layer's q/k/v/output weights
    are one tensor whichever of the three it runs; the finder's projections and the Q/K/V
    controller are their own. The extracted model computes what the supernet does, and the
    finder's loss reaches the supernet in training."""
    data = {
        **SPACE,
        "params": {
            "n_layers": {"int": [1, 2]},
            "d_model": {"choice": [16, 32]},
            "heads": {"choice": [2, 4], "per_layer": True},
            "attention": {"choice": ["full", "sparsefinder", "sparse_qkv"], "per_layer": True},
            "finder_dim": {"choice": [2, 4], "when": "attention == 'sparsefinder'",
                           "per_layer": True},
            "finder_k": {"choice": [4, 8], "when": "attention == 'sparsefinder'",
                         "per_layer": True},
            "qkv_sparsity": {"choice": [2, 4], "when": "attention == 'sparse_qkv'",
                             "per_layer": True},
        },
        "constraints": ["d_model % heads == 0", "d_model // heads % 2 == 0"],
    }  # fmt: skip
    small = SearchSpace.from_dict(data)
    torch.manual_seed(0)
    shared = Supernet.for_configs(probe_configs(small, 12))
    tokens = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    seen: set[str] = set()
    for config in configs(small, 10, seed=4):
        seen |= {layer.attention for layer in config.layers}
        names = {shared_name(n, config) for n, _ in supernet_params(shared, config)}
        assert "blocks.0.attn.proj.q.weight" in names
        shared.eval()
        with torch.no_grad():
            inside = shared(config, tokens)
            alone = shared.extract(config).eval()(tokens)
        torch.testing.assert_close(alone.logits, inside.logits, rtol=0, atol=0)
        if any(layer.attention == "sparsefinder" for layer in config.layers):
            shared.train()
            assert shared(config, tokens).aux_loss.item() > 0
    assert seen == {"full", "sparsefinder", "sparse_qkv"}


def supernet_params(shared: Supernet, config: ArchConfig):
    return shared.skeleton(config).named_parameters()
