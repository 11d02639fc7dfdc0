"""Analytic peak memory against the live-tensor tracker, on tiny models of every family."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILY_BASE as BASE
from conftest import FAMILY_BATCH as BATCH
from conftest import FAMILY_CASES as CASES
from conftest import FAMILY_TOKENS as TOKENS
from conftest import built_family

from archsearch import ArchConfig
from archsearch.costs.peak_bytes import (
    generation_memory,
    inference_memory,
    parameter_bytes,
    training_memory,
)
from archsearch.costs.tracker import LiveBytes, measure_inference, measure_training
from archsearch.errors import InputError

TOLERANCE = 0.10


def measured(config: ArchConfig) -> tuple[int, int, int]:
    """(inference peak, training peak, bytes before) from the tracker on a built model."""
    model, inputs, state = built_family(config, BATCH, TOKENS)
    measure_inference(model, inputs, state)  # cached masks are built once, outside the figure
    inference = measure_inference(model, inputs, state)
    training = measure_training(model, inputs, inputs[0], state)
    return inference.peak, training.peak, inference.before


@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_peak_memory_matches_the_tracker(case: str) -> None:
    config = ArchConfig.from_dict({**BASE, **CASES[case]})
    inference, training, before = measured(config)
    # activations are a real share of the inference peak, so agreement is not just the weights
    assert inference - before > 0.3 * inference, case
    estimate = inference_memory(config, TOKENS, BATCH)
    assert abs(estimate.peak / inference - 1) <= TOLERANCE, (case, estimate.peak, inference)
    estimate = training_memory(config, TOKENS, BATCH)
    assert abs(estimate.peak / training - 1) <= TOLERANCE, (case, estimate.peak, training)


def test_tracker_counts_storages_once_and_sees_frees() -> None:
    tracker = LiveBytes()
    base = torch.zeros(10)
    tracker.track([base])
    assert tracker.current == 40
    with tracker:
        a = torch.ones(100)  # 400 bytes
        view = a[10:20].view(2, 5)  # shares a's storage
        assert tracker.current == 440
        b = a * 2  # another 400
        assert tracker.current == 840
        del a  # the view keeps the storage alive
        assert tracker.current == 840
        del view, b
        assert tracker.current == 40
        assert tracker.peak == 840
    del base
    assert tracker.current == 0


def test_training_peak_covers_weights_gradients_and_adamw() -> None:
    config = ArchConfig.from_dict(BASE)
    for tokens, batch in ((1, 1), (16, 2)):
        estimate = training_memory(config, tokens, batch)
        assert estimate.peak >= 4 * parameter_bytes(config)
        assert estimate.optimizer == 2 * estimate.gradients == 2 * parameter_bytes(config)


def test_memory_grows_with_tokens_and_batch() -> None:
    config = ArchConfig.from_dict(BASE)
    for estimate in (inference_memory, training_memory, generation_memory):
        small, longer, wider = (estimate(config, t, b).peak for t, b in ((16, 1), (64, 1), (16, 4)))
        assert small < longer and small < wider


def test_generation_cache_of_local_attention_stops_at_its_window() -> None:
    full = ArchConfig.from_dict(BASE)
    local = ArchConfig.from_dict({**BASE, "attention": "local", "window": 8})
    caches = {
        name: [generation_memory(c, t).parts["cache"] for t in (32, 64, 128)]
        for name, c in (("full", full), ("local", local))
    }
    assert caches["full"][2] == 2 * caches["full"][1] == 4 * caches["full"][0]
    assert caches["local"][0] == caches["local"][1] == caches["local"][2]
    # keys and values of window + 1 positions, every layer
    a = full.d_model
    assert caches["local"][0] == full.n_layers * 2 * (8 + 1) * a * 4


def test_recurrent_state_is_counted_in_and_out() -> None:
    xl = ArchConfig.from_dict({**BASE, "memory": "xl", "mem_len": 16})
    plain = ArchConfig.from_dict(BASE)
    estimate = inference_memory(xl, TOKENS, BATCH)
    d = xl.d_model
    assert estimate.parts["state_in"] == xl.n_layers * BATCH * 16 * d * 4
    # each layer keeps a view of cat(memory, x), so the whole concatenation stays alive
    assert estimate.parts["state_out"] == xl.n_layers * BATCH * (16 + TOKENS) * d * 4
    assert estimate.peak > inference_memory(plain, TOKENS, BATCH).peak


def test_bad_sizes_are_input_errors() -> None:
    config = ArchConfig.from_dict(BASE)
    with pytest.raises(InputError, match="tokens"):
        inference_memory(config, 0)
    with pytest.raises(InputError, match="batch_size"):
        training_memory(config, 8, batch=0)


def test_every_registered_family_has_its_own_footprint() -> None:
    from archsearch.costs.peak_bytes import approximated

    for case in CASES.values():
        assert approximated(ArchConfig.from_dict({**BASE, **case})) == ()
