"""RETRO-style retrieval: a datastore of the training split only, chunked cross-attention to
the previous chunk's neighbours (causal across chunks), exact costs, training in the evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import TINY_RECIPE

from archsearch import ArchConfig, InputError, build_model, estimate_costs
from archsearch.costs import CountingConvention
from archsearch.costs.reference import measured_macs
from archsearch.evaluate.data import load_text, make_batches
from archsearch.evaluate.recipe import Recipe
from archsearch.evaluate.retrieval import Datastore, brute_force, chunk_keys, datastore_for
from archsearch.evaluate.train import check_compatible, retrieving_forward, training_windows
from archsearch.models.retrieval import random_neighbours

VOCAB = 64
BASE: dict[str, Any] = {"vocab_size": VOCAB, "max_seq_len": 64, "d_model": 32, "heads": 2}


def config(**overrides: Any) -> ArchConfig:
    settings = {"n_layers": 2, "retrieval_chunk": 4, "retrieval_k": 2, "retrieve": True}
    return ArchConfig.from_dict({**BASE, **settings, **overrides})


def store_of(length: int = 4000, chunk: int = 4, seed: int = 0) -> Datastore:
    generator = torch.Generator().manual_seed(seed)
    return Datastore.build(torch.randint(0, VOCAB, (length,), generator=generator), chunk, VOCAB)


@pytest.mark.parametrize(
    ("overrides", "tokens"),
    [
        ({"n_layers": 3, "retrieve": [False, True, True]}, 16),
        ({"retrieval_chunk": 8, "retrieval_k": 3}, 30),  # the last chunk is partial
        ({"embed_dim": 16, "heads": [2, 4], "attn_dim": [16, 32]}, 12),
        ({"share_layers": True, "memory": "xl", "mem_len": 4}, 9),
        ({}, 3),  # one chunk: nothing is read
        ({"bias": True}, 12),  # biases in the encoder block and every CCA's projections
    ],
)
def test_analytic_costs_equal_the_counted_forward(overrides: dict[str, Any], tokens: int) -> None:
    """MACs by FlopCounterMode (the model's forward, neighbours given) and parameters by
    numel; the search is outside the model and counted by neither."""
    from archsearch.models.memory import steady_state

    cfg = config(**overrides)
    torch.manual_seed(0)
    model = build_model(cfg)
    ids = torch.randint(0, VOCAB, (1, tokens))
    costs = estimate_costs(cfg, CountingConvention(tokens=tokens))
    counted = measured_macs(
        model, ids, state=steady_state(cfg), neighbours=random_neighbours(cfg, 1, tokens)
    )
    assert counted["total"] == costs.total_macs
    assert costs.params == sum(p.numel() for p in model.parameters())
    # the hooks see the encoder (with the neighbours' embedding projection) and every CCA
    reading = sum(v for k, v in counted.items() if k.endswith((".cca", ".retrieval")))
    assert (costs.macs_by_part["retrieval"] > 0) is (tokens > cfg.retrieval_chunk)
    assert reading == costs.macs_by_part["retrieval"]


@torch.no_grad()
def test_no_output_depends_on_a_later_token_through_retrieval() -> None:
    """Neighbours are looked up from the (changed) input each time, as the evaluator does; the
    outputs before the first changed token stay, whatever chunk it falls in."""
    cfg = config(n_layers=2, retrieval_chunk=4)
    store = store_of()
    model = build_model(cfg).eval()
    tokens = torch.randint(0, VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))

    def logits(ids: torch.Tensor) -> torch.Tensor:
        return model(ids, neighbours=store.neighbours(ids, cfg.retrieval_k)).logits

    for cut in (1, 4, 6, 11, 15):
        changed = tokens.clone()
        changed[:, cut:] = (changed[:, cut:] + 5) % VOCAB
        before, after = logits(tokens), logits(changed)
        torch.testing.assert_close(before[:, :cut], after[:, :cut], msg=f"cut {cut}")
        # the change reaches the neighbours of its chunk (or a later one), hence later outputs
        assert (
            not torch.equal(
                store.neighbours(tokens, 2)[:, cut // 4 :],
                store.neighbours(changed, 2)[:, cut // 4 :],
            )
            or cut // 4 >= 3
        )


@torch.no_grad()
def test_neighbours_change_exactly_the_chunks_after_theirs() -> None:
    cfg = config(retrieval_chunk=4, n_layers=1)
    model = build_model(cfg).eval()
    ids = torch.randint(0, VOCAB, (1, 12), generator=torch.Generator().manual_seed(2))
    neighbours = random_neighbours(cfg, 1, 12)
    other = neighbours.clone()
    other[:, 1] = (other[:, 1] + 1) % VOCAB  # chunk 1's neighbours: read by chunk 2 only
    a, b = model(ids, neighbours=neighbours).logits, model(ids, neighbours=other).logits
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_validation_text_never_reaches_the_datastore(tmp_path: Path) -> None:
    """A single text file is split by position (its last 5% held out); only the held-out part
    has upper-case letters. The store holds none, and neither do the neighbours retrieved for
    validation batches, which the evaluator reads from the training split's store."""
    train = "".join(f"def f{i}(x): return x + {i} # lower case only\n" for i in range(400))
    held_out = "VALIDATION TEXT IS UPPER CASE ONLY AND UNIQUE.\n" * 15  # under 5% of the file
    path = tmp_path / "corpus.txt"
    path.write_text(train + held_out)
    recipe = Recipe.from_dict({**TINY_RECIPE, "data": f"files:{path}", "batch_size": 2})
    batches = make_batches(recipe)
    store = datastore_for(batches, 8, 256)
    upper = torch.arange(ord("A"), ord("Z") + 1)
    assert not torch.isin(store.tokens.long(), upper).any()
    assert store.tokens.numel() <= len(train.encode())
    held = load_text(f"files:{path}").valid  # every validation chunk queries the store
    queries = held[: held.numel() // 8 * 8].long()[None]
    assert torch.isin(queries, upper).sum() == len(held_out.replace(" ", "").replace(".\n", ""))
    found = store.neighbours(queries, 2)
    assert found.numel() and not torch.isin(found, upper).any()


def test_training_rows_never_retrieve_their_own_text() -> None:
    """Without the window a chunk's best neighbour is itself (similarity 1); with it, no
    neighbour overlaps the text the row was cut from, or what follows it in the window."""
    recipe = Recipe.from_dict({**TINY_RECIPE, "batch_size": 2})
    batches = make_batches(recipe)
    store = datastore_for(batches, 8, 256)
    batch = batches.train(3)
    windows = training_windows(batches, batch.start, 2, 32)
    window = windows[:, None, None, :]

    def overlapping(starts: torch.Tensor) -> torch.Tensor:
        return (starts < window[..., 1]) & (starts + 16 > window[..., 0])

    own = store.neighbour_starts(batch.inputs, 2)
    assert overlapping(own).any()  # row 0 is chunk-aligned: its chunks find themselves
    similarity = (
        store.keys[own[0, :, 0] // 8] * store.keys[(windows[0, 0] // 8 + torch.arange(3))]
    ).sum(-1)
    torch.testing.assert_close(similarity, torch.ones(3))
    kept = store.neighbour_starts(batch.inputs, 2, windows)
    assert not overlapping(kept).any()


def test_faiss_and_brute_force_find_the_same_neighbours() -> None:
    pytest.importorskip("faiss")
    generator = torch.Generator().manual_seed(4)
    tokens = torch.randint(0, VOCAB, (6000,), generator=generator)
    with_faiss = Datastore.build(tokens, 6, VOCAB, use_faiss=True)
    without = Datastore.build(tokens, 6, VOCAB, use_faiss=False)
    assert with_faiss.index is not None and without.index is None
    queries = chunk_keys(torch.randint(0, VOCAB, (50, 6), generator=generator), VOCAB)
    a, b = with_faiss.search(queries, 4), without.search(queries, 4)
    # scores are distinct here (random chunks); where two tie, either order is right
    torch.testing.assert_close(
        (queries[:, None] * with_faiss.keys[a]).sum(-1),
        (queries[:, None] * without.keys[b]).sum(-1),
    )
    assert (a == b).float().mean() > 0.99
    exact = torch.argsort(queries @ without.keys.T, dim=1, descending=True)[:, :4]
    assert torch.equal(brute_force(without.keys, queries, 4), exact)


def test_the_model_asks_for_neighbours_and_refuses_wrong_ones() -> None:
    cfg = config()
    model = build_model(cfg)
    ids = torch.randint(0, VOCAB, (1, 12))
    with pytest.raises(ValueError, match="pass neighbours"):
        model(ids)
    with pytest.raises(ValueError, match="expected"):
        model(ids, neighbours=random_neighbours(cfg, 1, 8))


def test_settings_and_recipes_are_checked() -> None:
    with pytest.raises(InputError) as caught:
        ArchConfig.from_dict({**BASE, "n_layers": 1, "retrieve": True})
    assert caught.value.key == "retrieve"
    with pytest.raises(InputError) as caught:
        config(retrieval_chunk=128)
    assert caught.value.key == "retrieval_chunk"
    synthetic = Recipe.from_dict({**TINY_RECIPE, "data": "synthetic:mqar"})
    with pytest.raises(InputError, match="synthetic"):
        check_compatible(config(vocab_size=256), synthetic)
    selecting = Recipe.from_dict({**TINY_RECIPE, "selection": {"pool": 2, "by": "loss"}})
    with pytest.raises(InputError) as caught:
        check_compatible(config(vocab_size=256), selecting)
    assert caught.value.key == "selection"
    with pytest.raises(InputError) as caught:
        build_model(config(norm="post"))  # post-norm blocks have no CCA
    assert caught.value.key == "norm"
    model = build_model(config())
    with pytest.raises(ValueError, match="datastore"):
        retrieving_forward(model, None)


@pytest.mark.parametrize("proxy", ["synflow", "grad_norm", "jacob_cov"])
def test_zero_cost_proxies_read_the_neighbours(proxy: str) -> None:
    """Proxies run the model as training does, neighbours looked up in the training split's
    store; the retrieving layers then get gradient (synflow's flow, grad_norm's norm)."""
    from archsearch.evaluate.proxies import PROXIES

    recipe = Recipe.from_dict({**TINY_RECIPE, "proxy": proxy})
    with_retrieval = PROXIES[proxy](config(vocab_size=256, max_seq_len=32), recipe)
    without = PROXIES[proxy](config(vocab_size=256, max_seq_len=32, retrieve=False), recipe)
    assert with_retrieval == with_retrieval and with_retrieval != without  # finite, and differs


def test_the_supernet_refuses_it_in_one_line() -> None:
    from archsearch.space import SearchSpace
    from archsearch.supernet.sharing import check_shareable

    space = SearchSpace.from_dict(
        {
            "name": "with_retrieval",
            "task": "causal_lm",
            "params": {"n_layers": {"int": [1, 2]}, "retrieval_chunk": {"choice": [0, 16]}},
        }
    )
    with pytest.raises(InputError) as caught:
        check_shareable(space)
    assert caught.value.key == "retrieval_chunk" and "fix retrieval_chunk: 0" in str(caught.value)


def test_hf_export_refuses_it(tmp_path: Path) -> None:
    """ONNX takes the neighbours as an input (tests/test_family_registry.py runs the graph,
    alone and beside a memory state); the hf export has no such input."""
    from archsearch.export.huggingface import write_hf

    with pytest.raises(InputError, match="without retrieval"):
        write_hf(config(), {}, tmp_path / "hf", seed=0)


def test_latency_is_timed_on_the_model_with_neighbours() -> None:
    """Forward and generation run with neighbours of the right shape (the search apart);
    generation re-runs the prefix, as a key/value cache cannot hold new chunks' neighbours."""
    from archsearch.costs.latency import TimingOptions, measure_forward, measure_generation

    fast = TimingOptions(warmup=0, min_repeats=1, max_repeats=2, min_time_s=0.0, max_time_s=0.1)
    cfg = config()
    assert measure_forward(cfg, 12, options=fast).median > 0
    generation = measure_generation(cfg, 7, new_tokens=3, options=fast)
    assert generation.meta["method"] == "recompute" and generation.median > 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"retrieve": [False, True], "retrieval_chunk": 8},
        {"retrieval_chunk": 16, "retrieval_k": 4, "embed_dim": 16, "dropout": 0.1},
        {"retrieve": [False, True], "attn_dim": [16, 128], "retrieval_k": 4},  # CCA dominates
        # SparseFinder's attention returns its finder loss beside the output
        {"attention": "sparsefinder", "finder_dim": 4, "finder_k": 8, "retrieval_chunk": 8},
    ],
)
def test_peak_memory_estimates_match_the_tracker(overrides: dict[str, Any]) -> None:
    """Inference and training peaks of the live-tensor tracker, neighbours included."""
    from test_memory_costs import TOLERANCE

    from archsearch.costs.peak_bytes import approximated, inference_memory, training_memory
    from archsearch.costs.tracker import measure_inference, measure_training

    cfg = config(**{"d_model": 32, "max_seq_len": 128, **overrides})
    batch, tokens = 2, 64
    torch.manual_seed(0)
    model = build_model(cfg)
    ids = torch.randint(0, VOCAB, (batch, tokens))
    extra = {"neighbours": random_neighbours(cfg, batch, tokens)}
    measure_inference(model, (ids,), extra=extra)
    inference = measure_inference(model, (ids,), extra=extra).peak
    training = measure_training(model, (ids,), ids, extra=extra).peak
    assert approximated(cfg) == ()
    estimate = inference_memory(cfg, tokens, batch).peak
    assert abs(estimate / inference - 1) <= TOLERANCE / 4, (estimate, inference)
    estimate = training_memory(cfg, tokens, batch).peak
    assert abs(estimate / training - 1) <= TOLERANCE / 2, (estimate, training)
