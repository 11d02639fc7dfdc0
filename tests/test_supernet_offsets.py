"""Family offsets (archsearch/supernet/offsets.py): each layer kind's probe, its offset against
an independent recomputation, how a candidate's offset composes, the cache, and the search that
scores with them and picks its finalists per attention family."""

from __future__ import annotations

import json
import random

import pytest

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.evaluate.recipe import Recipe
from archsearch.space import SearchSpace
from archsearch.supernet.finetune import finetuned_from_file
from archsearch.supernet.offsets import Offsets, layer_kinds, measure_offsets, probe
from archsearch.supernet.scoring import score_from_file
from archsearch.supernet.store import ensure_supernet, supernet_key
from tests.test_supernet import FAMILIES, FFNS, SPACE, configs
from tests.test_supernet_finetune import TUNED, supernet_search_options

REFERENCE = {
    "vocab_size": 256,
    "max_seq_len": 32,
    "n_layers": 2,
    "d_model": 32,
    "heads": 4,
    "attention": "full",
    "ffn": "dense",
    "ffn_ratio": 2,
}


def test_each_family_has_a_kind_and_lsra_one_per_split():
    space = SearchSpace.from_dict(SPACE)
    kinds = layer_kinds(space)
    labels = [kind.label for kind in kinds]
    assert len(labels) == len(set(labels))
    assert {k.family for k in kinds if k.key == "attention"} == set(FAMILIES)
    assert {k.family for k in kinds if k.key == "ffn"} == set(FFNS)
    lsra = [k for k in kinds if k.family == "lsra"]
    # the split shapes LSRA's own tensors: one kind per value; the kernel is held at its middle
    assert sorted(dict(k.settings)["lsra_split"] for k in lsra) == [0.25, 0.5, 0.75]
    assert all(dict(k.others) == {"conv_kernel": 5} for k in lsra)
    local = [k for k in kinds if k.family == "local"]
    assert len(local) == 1 and local[0].settings == () and dict(local[0].others) == {"window": 8}
    reference = ArchConfig.from_dict(REFERENCE)
    for kind in lsra:
        built = probe(reference, kind)
        assert all(layer.attention == "lsra" for layer in built.layers)
        assert all(layer.lsra_split == dict(kind.settings)["lsra_split"] for layer in built.layers)


def test_a_candidate_is_moved_by_the_mean_of_its_layers_offsets():
    space = SearchSpace.from_dict(SPACE)
    kinds = layer_kinds(space)
    rng = random.Random(3)
    offsets = Offsets(
        {kind.label: rng.uniform(0.0, 0.5) for kind in kinds},
        {f"{k.key}={k.family}": [n for n, _ in k.settings] for k in kinds},
    )
    reference = ArchConfig.from_dict(REFERENCE)
    for kind in kinds:  # a probe is moved by its own kind's whole offset, plus the other key's
        built = probe(reference, kind)
        other = "ffn=dense" if kind.key == "attention" else "attention=full"
        assert offsets.of(built) == pytest.approx(
            offsets.offsets[kind.label] + offsets.offsets[other]
        )
    for config in configs(space, 20, seed=4):
        per_layer = []
        for layer in config.layers:
            split = f" lsra_split={layer.lsra_split}" if layer.attention == "lsra" else ""
            per_layer.append(
                offsets.offsets[f"attention={layer.attention}{split}"]
                + offsets.offsets[f"ffn={layer.ffn}"]
            )
        assert offsets.of(config) == pytest.approx(sum(per_layer) / len(per_layer))
    assert Offsets.from_dict(offsets.to_dict()) == offsets


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    space = SearchSpace.from_dict(SPACE)
    recipe = Recipe.from_dict(TUNED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARCHSEARCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        path = ensure_supernet(space, recipe)
    reference = ArchConfig.from_dict(REFERENCE)
    said: list[str] = []
    found = measure_offsets(space, path, recipe, reference, workers=2, say=said.append)
    return space, recipe, path, reference, found, said


def test_offsets_equal_the_probes_gaps_recomputed_here(measured):
    space, recipe, path, reference, found, said = measured
    assert any("fine-tuning" in line for line in said)

    def gap(config: ArchConfig) -> float:
        return score_from_file(path, config, recipe) - finetuned_from_file(path, config, recipe)

    base = gap(reference)
    assert found.offsets["attention=full"] == 0.0 and found.offsets["ffn=dense"] == 0.0
    checked = 0
    for kind in layer_kinds(space):
        if kind.label in ("attention=full", "ffn=dense"):
            continue
        expected = gap(probe(reference, kind)) - base
        assert found.offsets[kind.label] == pytest.approx(expected, abs=1e-9), kind.label
        checked += 1
    assert checked == len(layer_kinds(space)) - 2


def test_offsets_are_read_back_from_the_cache(measured):
    space, recipe, path, reference, found, _ = measured
    files = list(path.parent.glob("offsets-*.json"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    said: list[str] = []
    again = measure_offsets(space, path, recipe, reference, workers=1, say=said.append)
    assert again == found and not any("fine-tuning" in line for line in said)
    assert files[0].stat().st_mtime_ns == stamp
    # another reference is another probe set: another file
    other = ArchConfig.from_dict({**REFERENCE, "n_layers": 1})
    measure_offsets(space, path, recipe, other, workers=1, say=said.append)
    assert len(list(path.parent.glob("offsets-*.json"))) == 2


def test_offsets_and_refine_settings_are_checked_and_leave_the_cache_key():
    space = SearchSpace.from_dict(SPACE)
    with pytest.raises(InputError) as info:
        Recipe.from_dict(
            {**TUNED, "supernet": {**TUNED["supernet"], "finetune_steps": 0, "offsets": True}}
        )
    assert info.value.key == "supernet.offsets" and "finetune_steps" in info.value.message
    with pytest.raises(InputError) as info:
        Recipe.from_dict({**TUNED, "supernet": {**TUNED["supernet"], "finalists_by": "best"}})
    assert info.value.key == "supernet.finalists_by"
    for key, bad in (
        ("refine", -1),
        ("refine_rounds", 0),
        ("refine", "two"),
        ("refine_by", "best"),
        ("refine_from", "finalists"),
    ):
        with pytest.raises(InputError) as info:
            Recipe.from_dict({**TUNED, "supernet": {**TUNED["supernet"], key: bad}})
        assert info.value.key == f"supernet.{key}"
    with pytest.raises(InputError) as info:
        Recipe.from_dict(
            {**TUNED, "supernet": {**TUNED["supernet"], "finetune_steps": 0, "refine_by": "family"}}
        )
    assert info.value.key == "supernet.refine_by" and "finetune_steps" in info.value.message
    later = {
        "offsets": True,
        "finalists_by": "family",
        "refine": 2,
        "refine_rounds": 3,
        "refine_by": "family",
        "refine_from": "baseline",
    }
    on = Recipe.from_dict({**TUNED, "supernet": {**TUNED["supernet"], **later}})
    assert supernet_key(space, on) == supernet_key(space, Recipe.from_dict(TUNED))


@pytest.mark.slow
def test_run_scores_with_offsets_picks_each_familys_best_and_refines_the_winner(
    ray_local, tmp_path, monkeypatch
):
    import io

    import optuna
    from rich.console import Console

    from archsearch.report.front import front_table, pareto_front
    from archsearch.search import run_search
    from archsearch.search import trial_attrs as attrs
    from archsearch.search.finalists import SOURCE_ATTR, run_finalists
    from archsearch.search.inputs import load_inputs
    from archsearch.search.refine import PLAN_ATTR
    from archsearch.search.trials import attention_family, baseline_name, is_usable

    options = supernet_search_options(
        tmp_path,
        monkeypatch,
        trials=12,
        offsets=True,
        finalists_by="family",
        refine=2,
        refine_by="family",
        refine_from="baseline",
    )
    run_search(options)
    study = optuna.load_study(study_name="s", storage=options.storage)
    offsets = study.user_attrs["supernet_offsets"]
    assert any(value != 0.0 for value in offsets.values())
    usable = [t for t in study.trials if is_usable(t)]
    assert usable
    path = next((tmp_path / "cache").rglob("supernet.pt"))
    inputs = load_inputs(options)
    varied = {f"{k.key}={k.family}": [n for n, _ in k.settings] for k in layer_kinds(inputs.space)}
    for trial in usable:
        config = ArchConfig.from_dict(trial.user_attrs["arch"])
        raw = score_from_file(path, config, inputs.recipe)  # recomputed in this process
        assert trial.user_attrs["inherited_bpb"] == pytest.approx(raw, abs=1e-9)
        offset = Offsets(offsets, varied).of(config)
        assert trial.user_attrs["family_offset"] == pytest.approx(offset, abs=1e-12)
        assert trial.values[0] == pytest.approx(raw - offset, abs=1e-9)

    out = io.StringIO()
    assert run_finalists(options, inputs, "s", 3, Console(file=out, width=200)) is not None
    companion = optuna.load_study(study_name="s.trained", storage=options.storage)
    picked = {t.user_attrs[SOURCE_ATTR] for t in companion.trials if SOURCE_ATTR in t.user_attrs}
    candidates = [t for t in usable if baseline_name(t) is None]
    best: dict[str, optuna.trial.FrozenTrial] = {}
    for trial in sorted(candidates, key=lambda t: (t.values[0], t.values[1], t.number)):
        best.setdefault(attention_family(trial), trial)
    expected = [t.number for t in best.values()][:3]
    assert set(expected) <= picked and len(picked) == min(3, len(candidates))

    # refine: the best baseline's whole-stack family swaps scored by fine-tuning; the best
    # attention swap and the best FFN swap trained like the finalists
    plan = companion.user_attrs[PLAN_ATTR][0]
    mutants = [t for t in companion.trials if attrs.MUTATION_OF in t.user_attrs]
    assert len(mutants) == len(plan["params"]) == 2
    baselines = [t for t in companion.trials if baseline_name(t) and is_usable(t)]
    parent = min(baselines, key=lambda t: (t.values[0], t.values[1], t.number))
    assert plan["parent"] == parent.number
    from archsearch.search.mutations import values_of

    parent_values = values_of(inputs.space, parent.params)
    assert {e["swap"] for e in plan["pool"]} == {"attention", "ffn"}
    for entry in plan["pool"]:  # every layer's family of that kind swapped, the rest kept
        values = values_of(inputs.space, entry["params"])
        kind = entry["swap"]
        assert len(set(values[kind])) == 1 and values[kind] != parent_values[kind]
        other = "ffn" if kind == "attention" else "attention"
        assert values[other] == parent_values[other]
    scored = [e for e in plan["pool"] if e["finetuned_bpb"] is not None]
    best = {
        kind: min((e for e in scored if e["swap"] == kind), key=lambda e: e["finetuned_bpb"])
        for kind in ("attention", "ffn")
    }
    assert plan["params"] == [
        e["params"] for e in sorted(best.values(), key=lambda e: e["finetuned_bpb"])
    ]
    for entry in best.values():  # the scores are fine-tuned ones (recomputed here)
        config = inputs.space.to_config(values_of(inputs.space, entry["params"]))
        again = finetuned_from_file(path, config, inputs.recipe)
        assert entry["finetuned_bpb"] == pytest.approx(again, abs=1e-6)
    scores = {json.dumps(e["params"], sort_keys=True): e["finetuned_bpb"] for e in scored}
    for trial in mutants:
        key = json.dumps(trial.params, sort_keys=True)
        assert trial.user_attrs[attrs.FINETUNED_BPB] == pytest.approx(scores[key])
        assert trial.user_attrs[attrs.MUTATION_OF] == parent.number
        assert trial.params in plan["params"] and trial.params != parent.params
        assert is_usable(trial) and trial.user_attrs[attrs.STEPS] > 0  # trained from scratch
    said = out.getvalue()
    assert "refine round 1: training the best 2 by fine-tuned score of" in said
    assert "whole-stack family swaps of the best baseline or mutation" in said
    rows = pareto_front(companion)  # the front names what each mutation mutates
    on_front = [row for row in rows if row.number in {m.number for m in mutants}]
    assert all(row.mutation_of == parent.number for row in on_front)
    table = io.StringIO()
    Console(file=table, width=300).print(front_table(companion, rows))
    assert (f"(mutates {parent.number})" in table.getvalue()) == bool(on_front)


def test_without_a_reference_the_supernets_largest_subnetwork_is_it(measured):
    from archsearch.supernet.store import read_record

    space, recipe, path, _, _, _ = measured
    said: list[str] = []
    found = measure_offsets(space, path, recipe, None, workers=1, say=said.append)
    largest = ArchConfig.from_dict(read_record(path)["ends"][0])
    again: list[str] = []
    assert measure_offsets(space, path, recipe, largest, workers=1, say=again.append) == found
    assert any("fine-tuning" in line for line in said)  # measured once, then read back
    assert not any("fine-tuning" in line for line in again)
