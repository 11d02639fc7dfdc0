"""Mutations (the refine stage's neighbours) and the refine plan: each mutation is a valid,
in-budget architecture one or two decisions away from its parent, none repeats a trial, and a
round's plan is made once and enqueued once however often the run is resumed."""

from __future__ import annotations

import random
from types import SimpleNamespace

import optuna
import pytest

from archsearch.profiles import load_profile
from archsearch.search import trial_attrs as attrs
from archsearch.search.baselines import design_baselines
from archsearch.search.mutations import arch_key, decisions, mutations, values_of
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
