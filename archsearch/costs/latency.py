"""Measured latency on this machine: forward over whole sequences, and per-token generation.

Timings users can trust need the same protocol every time:

- a fixed thread count (``torch.set_num_threads``), restored afterwards;
- warm-up calls first (allocator, lazy initialisation, caches), never timed;
- repeats until the median is stable: at least ``min_repeats`` and ``min_time_s``, then until the
  median's standard error (estimated from the interquartile range: sigma ~ IQR / 1.349, standard
  error of a median ~ 1.2533 sigma / sqrt(n)) is below ``rel_error`` of the median, or a budget
  of ``max_repeats`` / ``max_time_s`` runs out;
- the spread reported with the median (quartiles and 10th/90th percentiles), so a noisy figure
  looks noisy;
- a stated clock: ``wall`` (``perf_counter``, what a user waits) or ``cpu`` (the calling
  thread's CPU time, ``thread_time``; one thread only). On a shared machine the CPU clock leaves
  out the time the process waits for a core, so it measures what the forward costs rather than
  how busy the machine is; on an idle machine the two agree.

Generation is timed per token with a key/value cache where ``incremental`` has a cached path for
the architecture (``method: kv_cache``); otherwise each new token re-runs the forward over the
whole prefix (``method: recompute``), which is what these models cost without a cache.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from archsearch.config import ArchConfig
from archsearch.families.retrieval import retrieves
from archsearch.seeding import seeded

IQR_TO_SIGMA = 1.349  # interquartile range of a normal distribution, in standard deviations
MEDIAN_EFFICIENCY = 1.2533  # standard error of the median / standard error of the mean (normal)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics (numpy's
    default), so reports agree with any other tool that reads the samples."""
    if not values:
        raise ValueError("no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside [0, 1]")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyStats:
    """Timed repeats of one call, in milliseconds, with the protocol that produced them."""

    samples_ms: tuple[float, ...]
    warmup: int = 0
    threads: int = 1
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError("no samples")

    @property
    def repeats(self) -> int:
        return len(self.samples_ms)

    @property
    def median(self) -> float:
        return quantile(self.samples_ms, 0.5)

    @property
    def q1(self) -> float:
        return quantile(self.samples_ms, 0.25)

    @property
    def q3(self) -> float:
        return quantile(self.samples_ms, 0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def p10(self) -> float:
        return quantile(self.samples_ms, 0.10)

    @property
    def p90(self) -> float:
        return quantile(self.samples_ms, 0.90)

    @property
    def mean(self) -> float:
        return sum(self.samples_ms) / len(self.samples_ms)

    @property
    def median_stderr(self) -> float:
        """Standard error of the median, from the IQR (robust to the odd slow repeat)."""
        return MEDIAN_EFFICIENCY * self.iqr / IQR_TO_SIGMA / math.sqrt(self.repeats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_ms": self.median,
            "q1_ms": self.q1,
            "q3_ms": self.q3,
            "iqr_ms": self.iqr,
            "p10_ms": self.p10,
            "p90_ms": self.p90,
            "mean_ms": self.mean,
            "median_stderr_ms": self.median_stderr,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "threads": self.threads,
            **self.meta,
        }

    def describe(self) -> str:
        return (
            f"{self.median:.3g} ms median (IQR {self.q1:.3g}-{self.q3:.3g}, "
            f"p10-p90 {self.p10:.3g}-{self.p90:.3g}; {self.repeats} repeats, "
            f"{self.threads} thread{'s' if self.threads > 1 else ''})"
        )


@dataclass(frozen=True)
class TimingOptions:
    """How long to time: warm-up calls, then repeats until the median is stable."""

    warmup: int = 2
    min_repeats: int = 5
    max_repeats: int = 200
    min_time_s: float = 0.2
    max_time_s: float = 5.0
    rel_error: float = 0.02  # stop when the median's standard error is below this fraction
    clock: str = "wall"  # wall | cpu (thread CPU time, one thread only)

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.min_repeats < 1 or self.max_repeats < self.min_repeats or self.warmup < 0:
            raise ValueError("need 0 <= warmup and 1 <= min_repeats <= max_repeats")


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}

# ``archsearch measure``'s rules for one architecture's forward: 2 warm-up calls, then at least
# 5 repeats and 0.3 s, until the median's standard error is under 2% (at most 200 repeats or
# 3 s). The one place they are stated: ``measure`` and ``scripts/collect_latency.py`` (which
# times architectures on another device) both read it.
MEASURE_TIMING = TimingOptions(min_time_s=0.3, max_time_s=3.0)


def _clock(options: TimingOptions, threads: int) -> Callable[[], int]:
    if options.clock == "cpu" and threads != 1:
        raise ValueError("the cpu clock times the calling thread: use it with threads=1")
    return CLOCKS[options.clock]


def time_call(
    fn: Callable[[], Any], *, threads: int = 1, options: TimingOptions | None = None
) -> LatencyStats:
    """Time ``fn`` under the protocol of this module's docstring."""
    options = options or TimingOptions()
    clock = _clock(options, threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(options.warmup):
            fn()
        samples: list[float] = []
        started = time.perf_counter()
        while len(samples) < options.max_repeats:
            begin = clock()
            fn()
            samples.append((clock() - begin) / 1e6)
            elapsed = time.perf_counter() - started
            if elapsed >= options.max_time_s:
                break
            if len(samples) >= options.min_repeats and elapsed >= options.min_time_s:
                stats = LatencyStats(tuple(samples))
                if stats.median_stderr <= options.rel_error * stats.median:
                    break
    finally:
        torch.set_num_threads(previous)
    return LatencyStats(
        tuple(samples), warmup=options.warmup, threads=threads, meta={"clock": options.clock}
    )


def _inputs(config: ArchConfig, tokens: int, batch: int) -> tuple[tuple, dict[str, Any]]:
    from archsearch.models.memory import steady_state

    ids = torch.randint(0, config.vocab_size, (batch, tokens))
    if config.task == "seq2seq":
        return (ids, torch.randint(0, config.vocab_size, (batch, tokens))), {}
    kwargs: dict[str, Any] = {"state": steady_state(config, batch)}
    if retrieves(config):
        from archsearch.models.retrieval import random_neighbours

        kwargs["neighbours"] = random_neighbours(config, batch, tokens)
    return (ids,), kwargs


def _built(config: ArchConfig, seed: int) -> torch.nn.Module:
    from archsearch.models import build_model

    return build_model(config, seed=seed).eval()


def measure_forward(
    config: ArchConfig,
    tokens: int,
    batch: int = 1,
    *,
    threads: int = 1,
    options: TimingOptions | None = None,
    seed: int = 0,
    model: torch.nn.Module | None = None,
) -> LatencyStats:
    """Latency of one inference forward over ``batch`` sequences of ``tokens`` (seq2seq: as many
    source tokens; recurrent memory: full, as in steady state). ``model`` times that module
    (e.g. a compressed one, built for ``config``) instead of a fresh ``config`` model."""
    model = _built(config, seed) if model is None else model.eval()
    with seeded(seed):
        args, kwargs = _inputs(config, tokens, batch)

    @torch.no_grad()
    def forward() -> None:
        model(*args, **kwargs)

    stats = time_call(forward, threads=threads, options=options)
    meta = {**stats.meta, "kind": "forward", "tokens": tokens, "batch": batch}
    return LatencyStats(stats.samples_ms, stats.warmup, stats.threads, meta)


def measure_generation(
    config: ArchConfig,
    context: int,
    new_tokens: int = 16,
    batch: int = 1,
    *,
    threads: int = 1,
    options: TimingOptions | None = None,
    seed: int = 0,
) -> LatencyStats:
    """Per-token latency of greedy generation: ``new_tokens`` tokens after a ``context``-token
    prompt; each sample is one token's time (prompt processing not included)."""
    from archsearch.costs import incremental

    if config.task != "causal_lm":
        raise ValueError("generation is timed for causal_lm models")
    model = _built(config, seed)
    with seeded(seed):
        prompt = torch.randint(0, config.vocab_size, (batch, context))
    cached = incremental.supports(config)
    tokens_needed = context + new_tokens
    if not cached and tokens_needed > config.max_seq_len:
        config = config.replace(max_seq_len=tokens_needed)
        model = _built(config, seed)
    state: dict[str, Any] = {}

    @torch.no_grad()
    def start() -> None:
        state["tokens"] = prompt
        if cached:
            decoder = incremental.IncrementalDecoder(model)
            state["next"] = decoder.prefill(prompt).argmax(-1, keepdim=True)
            state["decoder"] = decoder

    @torch.no_grad()
    def one_token() -> None:
        if cached:
            state["next"] = state["decoder"].step(state["next"]).argmax(-1, keepdim=True)
            return
        extra = {}
        if retrieves(config):  # random neighbours: the search is not the model's (see _inputs)
            from archsearch.models.retrieval import random_neighbours

            extra["neighbours"] = random_neighbours(config, batch, state["tokens"].shape[1])
        logits = model(state["tokens"], **extra).logits[:, -1]
        state["tokens"] = torch.cat((state["tokens"], logits.argmax(-1, keepdim=True)), 1)

    options = options or TimingOptions()
    clock = _clock(options, threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    samples: list[float] = []
    try:
        start()
        for _ in range(options.warmup):
            one_token()
        started = time.perf_counter()
        while len(samples) < max(options.min_repeats, 1) or (
            time.perf_counter() - started < options.min_time_s
            and len(samples) < options.max_repeats
        ):
            start()  # every round decodes the same positions: context .. context + new_tokens
            for _ in range(new_tokens):
                begin = clock()
                one_token()
                samples.append((clock() - begin) / 1e6)
            if time.perf_counter() - started >= options.max_time_s:
                break
    finally:
        torch.set_num_threads(previous)
    meta = {
        "clock": options.clock,
        "kind": "generation",
        "tokens": context,
        "new_tokens": new_tokens,
        "batch": batch,
        "method": "kv_cache" if cached else "recompute",
    }
    return LatencyStats(tuple(samples), options.warmup, threads, meta)
