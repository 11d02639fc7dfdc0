"""Latency measurement machinery: statistics, the timing protocol, cached decoding."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
import torch

from archsearch import ArchConfig, build_model
from archsearch.costs import incremental
from archsearch.costs.latency import (
    LatencyStats,
    TimingOptions,
    measure_forward,
    measure_generation,
    quantile,
    time_call,
)

FAST = TimingOptions(warmup=1, min_repeats=3, max_repeats=5, min_time_s=0.0, max_time_s=2.0)


def config(**overrides: Any) -> ArchConfig:
    base: dict[str, Any] = {"vocab_size": 50, "d_model": 16, "n_layers": 2, "heads": 2}
    return ArchConfig.from_dict({**base, **overrides})


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_agree_with_numpy(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 40))]
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert math.isclose(quantile(values, q), float(np.percentile(values, 100 * q)))


def test_stats_of_known_samples() -> None:
    stats = LatencyStats(tuple(float(v) for v in range(1, 12)), warmup=2, threads=1)  # 1..11
    assert stats.median == 6 and stats.q1 == 3.5 and stats.q3 == 8.5 and stats.iqr == 5
    assert math.isclose(stats.p10, 2.0) and math.isclose(stats.p90, 10.0)
    assert math.isclose(stats.median_stderr, 1.2533 * 5 / 1.349 / math.sqrt(11))
    summary = stats.to_dict()
    assert summary["median_ms"] == 6 and summary["repeats"] == 11 and summary["warmup"] == 2
    with pytest.raises(ValueError):
        LatencyStats(())


def test_time_call_warms_up_repeats_and_restores_threads() -> None:
    calls = []
    torch.set_num_threads(1)
    options = TimingOptions(warmup=3, min_repeats=4, max_repeats=4, min_time_s=0.0)
    stats = time_call(lambda: calls.append(torch.get_num_threads()), threads=2, options=options)
    assert len(calls) == 3 + 4 and set(calls) == {2}  # timed with the asked thread count
    assert stats.repeats == 4 and stats.warmup == 3 and stats.threads == 2
    assert torch.get_num_threads() == 1


def test_time_call_stops_once_the_median_is_stable() -> None:
    options = TimingOptions(
        warmup=0, min_repeats=5, max_repeats=1000, min_time_s=0.0, max_time_s=30.0, clock="cpu"
    )
    stats = time_call(lambda: sum(range(2000)), options=options)
    # identical calls (on the CPU clock, which other processes do not inflate): the spread is
    # small against the median long before 1000 repeats
    assert 5 <= stats.repeats < 1000
    assert stats.median_stderr <= options.rel_error * stats.median


def test_cpu_clock_is_for_one_thread_only() -> None:
    with pytest.raises(ValueError, match="threads=1"):
        time_call(lambda: None, threads=2, options=TimingOptions(clock="cpu"))
    with pytest.raises(ValueError, match="clock"):
        TimingOptions(clock="sundial")
    stats = time_call(lambda: sum(range(1000)), options=TimingOptions(clock="cpu", max_repeats=5))
    assert stats.meta["clock"] == "cpu" and stats.median > 0


def test_forward_and_generation_are_timed() -> None:
    cfg = config()
    forward = measure_forward(cfg, 16, batch=2, options=FAST)
    assert forward.meta == {"clock": "wall", "kind": "forward", "tokens": 16, "batch": 2}
    assert 3 <= forward.repeats <= 5 and forward.median > 0
    generation = measure_generation(cfg, 8, new_tokens=3, options=FAST)
    assert generation.meta["method"] == "kv_cache"
    assert generation.repeats % 3 == 0  # whole rounds of 3 tokens, one sample per token
    recompute = measure_generation(config(attention="performer"), 8, new_tokens=2, options=FAST)
    assert recompute.meta["method"] == "recompute"


CACHED = {
    "full": {},
    "local": {"attention": "local", "window": 3},
    "local_dilated": {"attention": "local", "window": 2, "dilation": 3},
    "lsra": {"attention": ["lsra", "full"], "lsra_split": 0.5, "conv_kernel": 3},
    "lsra_dynamic": {"attention": "lsra", "lsra_split": 0.5, "conv_type": "dynamic"},
    "switch_sparse": {
        "ffn": ["switch_moe", "sparse"],
        "experts": [2, 1],
        "capacity_factor": 2.0,  # no token overflows in the full forward either
        "sparsity": [1, 2],
    },
    "factorized": {"embed_dim": 8, "tie_embeddings": False},
    "biased": {"attention": ["full", "local"], "window": 3, "bias": True},
}


@pytest.mark.parametrize("name", sorted(CACHED))
def test_cached_decoding_equals_the_full_forward(name: str) -> None:
    cfg = config(**CACHED[name])
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    tokens = torch.randint(0, cfg.vocab_size, (2, 11))
    with torch.no_grad():
        full = model(tokens).logits
    decoder = incremental.IncrementalDecoder(model)
    steps = [decoder.prefill(tokens[:, :4])]
    steps += [decoder.step(tokens[:, t : t + 1]) for t in range(4, 11)]
    torch.testing.assert_close(torch.stack(steps, 1), full[:, 3:], rtol=1e-4, atol=1e-5)


def test_only_families_with_a_cache_path_decode_incrementally() -> None:
    assert incremental.supports(config(attention="local", window=4))
    assert not incremental.supports(config(attention=["full", "lsh"]))
    assert not incremental.supports(config(memory="xl", mem_len=4))
    seq2seq = config(task="seq2seq", n_encoder_layers=1)
    assert not incremental.supports(seq2seq)
    assert not incremental.supports(config(norm="post"))  # timed by re-running the prefix
    with pytest.raises(ValueError):
        incremental.IncrementalDecoder(build_model(config(attention="performer")))
