"""Reference points: the Transformer and the Lite Transformer sized to the budget, queued once."""

from __future__ import annotations

import itertools

import optuna

from archsearch import ArchConfig, estimate_costs, load_profile, load_space
from archsearch.errors import InputError
from archsearch.search.baselines import design_baselines, enqueue_baselines


def uniform_macs(space, profile, n_layers: int, d_model: int, **layer) -> float | None:
    """MACs of a uniform model built directly from ArchConfig, or None if it cannot be built."""
    values = {**space.fixed, "n_layers": n_layers, "d_model": d_model, **layer}
    try:
        return estimate_costs(ArchConfig.from_dict({**values, "task": space.task}), profile).macs
    except InputError:
        return None


def test_transformer_baseline_is_the_largest_uniform_ffn4_model_in_budget():
    space, profile = load_space("tiny_lm"), load_profile("mobile_100M")
    baselines = {b.name: b for b in design_baselines(space, profile)}
    transformer = baselines["transformer"]
    config = ArchConfig.from_dict({**transformer.values, "task": "causal_lm"})
    assert {layer.attention for layer in config.layers} == {"full"}
    assert {layer.ffn_ratio for layer in config.layers} == {4}
    assert {layer.heads for layer in config.layers} == {8}
    assert config.embed_dim is None
    limit = profile.budgets["macs"]
    assert transformer.macs == estimate_costs(config, profile).macs <= limit
    # No other depth and width of the space gives a larger such model within the budget.
    depths = range(1, 5)
    widths = space.params["d_model"].choices
    fits = [
        macs
        for n, d in itertools.product(depths, widths)
        if (macs := uniform_macs(space, profile, n, d, heads=8, ffn_ratio=4)) is not None
        and macs <= limit
    ]
    assert transformer.macs == max(fits)


def test_lite_baseline_has_a_flat_ffn_and_lsra_where_the_space_offers_it():
    profile = load_profile("mobile_100M")
    tiny = {b.name: b for b in design_baselines(load_space("tiny_lm"), profile)}
    lite = tiny["lite_transformer"].values
    assert lite["ffn_ratio"] == [1] * lite["n_layers"]  # flattened: hidden width = d_model
    assert lite["attention"] == "full"  # tiny_lm has no LSRA

    efficient = load_space("efficient_lm")
    lite = {b.name: b for b in design_baselines(efficient, profile)}["lite_transformer"]
    config = ArchConfig.from_dict({**lite.values, "task": "causal_lm"})
    assert {layer.attention for layer in config.layers} == {"lsra"}
    assert {layer.lsra_split for layer in config.layers} == {0.5}
    assert {layer.hidden_dim(config.d_model) for layer in config.layers} == {config.d_model}
    kernels = [layer.conv_kernel for layer in config.layers]
    assert kernels[:4] == [3, 7, 15, 31] and set(kernels[4:]) <= {31}
    assert lite.macs <= profile.budgets["macs"]


def test_a_space_fixed_to_lsra_has_no_transformer_baseline():
    names = [
        b.name
        for b in design_baselines(load_space("lite_transformer"), load_profile("mobile_100M"))
    ]
    assert names == ["lite_transformer"]


def test_baselines_are_queued_once_per_study(tmp_path):
    space, profile = load_space("tiny_lm"), load_profile("mobile_100M")
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/b.db")
    study = optuna.create_study(storage=storage, study_name="s", directions=["minimize"] * 2)
    designed = design_baselines(space, profile)
    made = []

    def make():
        made.append(1)
        return designed

    first = enqueue_baselines(study, make)
    assert [b.name for b in first] == ["transformer", "lite_transformer"]
    again = enqueue_baselines(study, make)
    assert again == [] and len(made) == 1
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["baseline"] for t in waiting] == ["transformer", "lite_transformer"]
    assert [t.system_attrs["fixed_params"] for t in waiting] == [b.params for b in designed]

    # A run killed after planning but before queuing everything: the next one queues the rest.
    other = optuna.create_study(storage=storage, study_name="t", directions=["minimize"] * 2)
    plan = {b.name: {"params": b.params, "arch": b.values, "macs": b.macs} for b in designed}
    other.set_user_attr("baselines", plan)
    other.enqueue_trial(designed[0].params, user_attrs={"baseline": designed[0].name})
    assert [b.name for b in enqueue_baselines(other, make)] == ["lite_transformer"]

    # A study that already had trials before baselines existed gets none.
    old = optuna.create_study(storage=storage, study_name="old", directions=["minimize"] * 2)
    old.enqueue_trial({"n_layers": 1})
    assert enqueue_baselines(old, make) == [] and len(made) == 1
