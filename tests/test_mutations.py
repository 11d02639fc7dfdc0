"""Mutations (the refine stage's neighbours) and the refine plan: each mutation is a valid,
in-budget architecture one or two decisions away from its parent (or one parameter changed in
every layer), none repeats a trial, family swaps are ranked kind by kind, and a round's plan is made
once and enqueued once however often the run is resumed."""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import optuna
import pytest

from archsearch.config import ArchConfig
from archsearch.profiles import load_profile
from archsearch.search import trial_attrs as attrs
from archsearch.search.baselines import design_baselines
from archsearch.search.mutations import (
    arch_key,
    decisions,
    mutations,
    stack_neighbours,
    values_of,
)
from archsearch.search.refine import PLAN_ATTR, plan_round, queue_round
from archsearch.search.trials import trial_params
from archsearch.search.verdict import judge
from archsearch.space import load_space
from archsearch.space.draws import RandomDraws


class _Recording(RandomDraws):
    """Random draws that keep each decision's value and distribution (what a trial records)."""

    def __init__(self, rng: random.Random):
        super().__init__(rng)
        self.params: dict = {}
        self.distributions: dict = {}

    def suggest_categorical(self, name, choices):
        self.distributions[name] = optuna.distributions.CategoricalDistribution(list(choices))
        self.params[name] = super().suggest_categorical(name, choices)
        return self.params[name]

    def suggest_int(self, name, low, high, *, step=1, log=False):
        self.distributions[name] = optuna.distributions.IntDistribution(low, high, step=step)
        self.params[name] = super().suggest_int(name, low, high, step=step, log=log)
        return self.params[name]

    def suggest_float(self, name, low, high, *, step=None, log=False):
        self.distributions[name] = optuna.distributions.FloatDistribution(low, high, step=step)
        self.params[name] = super().suggest_float(name, low, high, step=step, log=log)
        return self.params[name]


@pytest.fixture(scope="module")
def oneshot():
    return load_space("oneshot_lm"), load_profile("mobile_100M")


def _drawn(space, seed, distributions=False):
    draw = _Recording(random.Random(seed))
    values = space.suggest(draw)
    return (draw.params, draw.distributions if distributions else values)


def test_values_and_decisions_of_a_trials_parameters_are_its_draws(oneshot):
    space, _ = oneshot
    for seed in range(20):
        params, values = _drawn(space, seed)
        assert values_of(space, params) == values
        assert decisions(space, params) == list(params)


def test_mutations_change_one_or_two_decisions_and_stay_valid_in_budget(oneshot):
    space, profile = oneshot
    parents = [b.params for b in design_baselines(space, profile)]
    drawn = (_drawn(space, seed) for seed in range(40))
    parents += [p for p, v in drawn if judge(space, profile, v).trainable][:4]
    assert len(parents) == 6
    for number, parent in enumerate(parents):
        assert set(decisions(space, parent)) <= set(parent)  # a parent sets every decision
        found = mutations(space, profile, parent, 12, random.Random(number))
        assert len(found) == 12
        keys = {arch_key(values_of(space, m)) for m in found}
        assert len(keys) == 12  # distinct architectures
        assert arch_key(values_of(space, parent)) not in keys
        for child in found:
            assert judge(space, profile, values_of(space, child)).trainable
            # decisions both made: at most two differ (a family or depth change also drops
            # or adds the decisions that depend on it)
            changed = [n for n in parent if n in child and child[n] != parent[n]]
            assert len(changed) <= 2
            assert changed or set(child) != set(parent)


def test_mutations_skip_taken_architectures(oneshot):
    space, profile = oneshot
    parent = design_baselines(space, profile)[1].params
    first = mutations(space, profile, parent, 10, random.Random(1))
    taken = {arch_key(values_of(space, m)) for m in first}
    again = mutations(space, profile, parent, 10, random.Random(1), taken)
    assert len(again) == 10
    assert not taken & {arch_key(values_of(space, m)) for m in again}


def _changed(parent: dict, child: dict) -> dict:
    """Keys whose values differ between two space-value dicts (None where one lacks it)."""
    return {k: child.get(k) for k in parent.keys() | child.keys() if parent.get(k) != child.get(k)}


def test_stack_neighbours_set_one_parameter_in_every_layer(oneshot):
    space, profile = oneshot
    baselines = {b.name: b for b in design_baselines(space, profile)}
    for name, baseline in baselines.items():
        parent = values_of(space, baseline.params)
        found = stack_neighbours(space, profile, baseline.params, random.Random(0))
        keys = [arch_key(values_of(space, child)) for _, child in found]
        assert len(set(keys)) == len(keys) and arch_key(parent) not in keys
        covered = set()
        for swapped, child in found:
            values = values_of(space, child)
            assert judge(space, profile, values).trainable
            changed = _changed(parent, values)
            if "n_layers" in changed:  # depth: every list cut, or grown by its last layer
                assert swapped == "n_layers"
                for key, value in changed.items():
                    if isinstance(parent.get(key), list):
                        n, old = values["n_layers"], parent[key]
                        assert value == (old + [old[-1]] * n)[:n]
                covered.add(("n_layers", values["n_layers"]))
                continue
            # one parameter of both draws differs, and what it switched on or off; every list
            # it changed holds one value: the whole stack changed at once
            both = [k for k in changed if k in parent and values.get(k) is not None]
            assert both == [swapped], changed
            value = values[swapped]
            if isinstance(value, list):
                assert len(set(map(str, value))) == 1
                value = value[0]
            assert all(k not in parent or k not in values for k in changed if k != swapped)
            covered.add((swapped, value))
        if name == "lite_transformer":  # every other value of these, all valid and in budget
            wanted = {("ffn", v) for v in ("glu", "switch_moe", "sparse")}
            wanted |= {("n_layers", n) for n in (2, 3, 4, 5)} | {("heads", 2), ("heads", 8)}
            assert wanted <= covered
            glu = next(c for _, c in found if values_of(space, c).get("ffn") == ["glu"] * 6)
            lite = space.to_config(parent).to_dict()
            built = space.to_config(values_of(space, glu))
            assert built == ArchConfig.from_dict({**lite, "ffn": "glu"})
            swaps = stack_neighbours(
                space, profile, baseline.params, random.Random(0), parameters=("attention", "ffn")
            )
            families = [(n, values_of(space, c)[n][0]) for n, c in swaps]
            others = ("full", "local", "linformer", "performer", "lsh")
            assert families == [("attention", f) for f in others] + [
                ("ffn", f) for f in ("glu", "switch_moe", "sparse")
            ]


def _trained(study, space, params, quality, **marks):
    """A finished trial of ``params`` with that quality (and user attributes)."""
    study.enqueue_trial(params, user_attrs={attrs.STATUS: attrs.COMPLETE, **marks})
    trial = study.ask()
    space.suggest(trial)
    study.tell(trial, [quality, 1e6])
    return trial.number


def test_a_family_round_swaps_the_best_baselines_families_kind_by_kind(oneshot, tmp_path):
    """refine_by family from the best baseline: every whole-stack attention and FFN swap is
    scored once, the best of each kind is trained in turn, a failed score is left out, and a
    resumed run re-reads the plan."""
    space, profile = oneshot
    inputs = SimpleNamespace(space=space, profile=profile)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}", directions=["minimize", "minimize"]
    )
    study.set_user_attr("objectives", ["val_bpb", "macs"])
    transformer, lite = design_baselines(space, profile)
    _trained(study, space, transformer.params, 3.3, baseline="transformer")
    lite_number = _trained(study, space, lite.params, 3.2, baseline="lite_transformer")
    finalist = _trained(study, space, _drawn(space, 7)[0], 3.0)  # better, but no baseline
    # the default rule mutates the best trained model: the finalist
    assert plan_round(study, inputs, 1, 0, 0)["parent"] == finalist
    calls = []
    order = {"performer": 1.0, "full": 1.5, "local": 1.6, "linformer": 1.7, "lsh": math.nan}
    order |= {"sparse": 1.2, "glu": 1.1, "switch_moe": 1.3}

    def score(archs):  # by the swapped family (lsh fails), an order the test knows
        calls.append(len(archs))
        out = []
        for arch in archs:
            swapped = arch["ffn"] if arch["ffn"] != "dense" else arch["attention"]
            value = order[swapped if isinstance(swapped, str) else swapped[0]]
            out.append((value, "RuntimeError: broke" if math.isnan(value) else ""))
        return out

    plan = plan_round(study, inputs, 3, 0, 1, by="family", from_="baseline", score=score)
    assert plan["parent"] == lite_number and calls == [8] and len(plan["pool"]) == 8
    failed = [e for e in plan["pool"] if e["finetuned_bpb"] is None]
    assert [e["failed"] for e in failed] == ["RuntimeError: broke"]
    picked = [values_of(space, p) for p in plan["params"]]
    assert [(v["attention"][0], v["ffn"][0]) for v in picked] == [
        ("performer", "dense"),
        ("lsra", "glu"),
        ("full", "dense"),
    ]
    assert plan["finetuned_bpb"] == [1.0, 1.1, 1.5]
    again = plan_round(study, inputs, 3, 0, 1, by="family", from_="baseline", score=score)
    assert again == plan and calls == [8]  # a resumed run re-reads the plan: nothing scored
    assert queue_round(study, plan, 1) == 3
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(t.user_attrs[attrs.FINETUNED_BPB] for t in waiting) == [1.0, 1.1, 1.5]
    assert {t.user_attrs[attrs.MUTATION_OF] for t in waiting} == {lite_number}


def test_a_round_is_planned_once_from_the_best_trial_and_queued_once(oneshot, tmp_path):
    space, profile = oneshot
    inputs = SimpleNamespace(space=space, profile=profile)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}", directions=["minimize", "minimize"]
    )
    study.set_user_attr("objectives", ["val_bpb", "macs"])
    drawn = [_drawn(space, seed, distributions=True) for seed in range(60)]
    fit = [(p, d) for p, d in drawn if judge(space, profile, values_of(space, p)).trainable]
    for number, (params, distributions) in enumerate(fit[:3]):
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                values=[3.0 - number * 0.1, 1e6],  # the last is the best
                user_attrs={attrs.STATUS: attrs.COMPLETE},
            )
        )
    best = study.trials[2]
    plan = plan_round(study, inputs, 3, seed=0, round_=0)
    assert plan["parent"] == best.number
    assert study.user_attrs[PLAN_ATTR] == [plan]
    assert plan_round(study, inputs, 3, seed=0, round_=0) == plan  # a resumed run: same plan
    assert queue_round(study, plan, 0) == 3
    assert queue_round(study, plan, 0) == 3  # enqueued once
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(arch_key(trial_params(t)) for t in waiting) == sorted(
        arch_key(p) for p in plan["params"]
    )
    assert {t.user_attrs[attrs.MUTATION_OF] for t in waiting} == {best.number}
    # the next round is planned from the study as it stands (no trained mutation yet: same
    # parent), and leaves out the architectures already waiting
    second = plan_round(study, inputs, 3, seed=0, round_=1)
    assert second["parent"] == best.number
    assert not {arch_key(p) for p in second["params"]} & {arch_key(p) for p in plan["params"]}


def test_a_round_interrupted_mid_way_trains_each_mutation_once(oneshot, tmp_path):
    """A driver killed while one mutation trained and another was being sampled: the next run
    closes both, queues the first again as itself and the second afresh, and nothing twice."""
    space, profile = oneshot
    inputs = SimpleNamespace(space=space, profile=profile)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}", directions=["minimize", "minimize"]
    )
    study.set_user_attr("objectives", ["val_bpb", "macs"])
    params, distributions = _drawn(space, 3, distributions=True)
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            values=[3.0, 1e6],
            user_attrs={attrs.STATUS: attrs.COMPLETE},
        )
    )
    plan = plan_round(study, inputs, 3, seed=0, round_=0)
    assert queue_round(study, plan, 0) == 3
    training, sampling = study.ask(), study.ask()  # two taken from the queue, then killed
    space.suggest(training)  # its enqueued parameters, as the searcher draws them
    training.set_user_attr(attrs.STATUS, attrs.TRAINING)
    assert queue_round(study, plan, 0) == 3  # the one left, and both again
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert sorted(arch_key(trial_params(t)) for t in waiting) == sorted(
        arch_key(p) for p in plan["params"]
    )
    retry = [t for t in waiting if t.user_attrs.get(attrs.RETRY_OF) == training.number]
    assert len(retry) == 1 and retry[0].user_attrs[attrs.MUTATION_OF] == plan["parent"]
    assert all(t.user_attrs[attrs.REFINE_ROUND] == 0 for t in waiting)
    assert not [t for t in waiting if t.user_attrs.get(attrs.RETRY_OF) == sampling.number]
    closed = {t.number: t.user_attrs[attrs.STATUS] for t in study.trials if t.state.is_finished()}
    assert closed[training.number] == closed[sampling.number] == attrs.INTERRUPTED
    assert queue_round(study, plan, 0) == 3  # and again: nothing more
