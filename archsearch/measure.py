"""Everything archsearch knows about one architecture under one profile, as a plain dict.

``archsearch measure`` prints it (and ``--json`` dumps it): analytic MACs and parameters, the
three memory figures, latency measured here (forward, on the wall and CPU clocks; per-token
generation) and predicted (when this machine has a predictor), the profile's budgets, and with
``seq_lens`` the same figures as a function of sequence length.

Outside ``archsearch.costs`` because it reads profiles, which read costs: costs never import
profiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from archsearch.config import ArchConfig
from archsearch.costs import estimate_costs
from archsearch.costs.convention import CountingConvention
from archsearch.costs.latency import (
    MEASURE_TIMING,
    TimingOptions,
    measure_forward,
    measure_generation,
)
from archsearch.costs.peak_bytes import generation_memory, inference_memory, training_memory
from archsearch.costs.predictor import LatencyPredictor, cache_path, load_predictor
from archsearch.profiles import COST_METRICS, Profile

MAX_TIMED_MACS = 2e10  # longer forwards are predicted, not timed (tens of seconds each here)


@dataclass(frozen=True)
class MeasureOptions:
    """What to time, and how long."""

    latency: bool = True
    generate: int = 16  # new tokens timed per generation round
    timing: TimingOptions = MEASURE_TIMING
    sweep_timing: TimingOptions = field(
        default_factory=lambda: TimingOptions(
            warmup=1, min_repeats=3, min_time_s=0.1, max_time_s=1.5, rel_error=0.05
        )
    )


def _memory(config: ArchConfig, tokens: int, batch: int) -> dict[str, Any]:
    return {
        "inference": inference_memory(config, tokens, batch).to_dict(),
        "generation": generation_memory(config, tokens, batch).to_dict(),
        "training": training_memory(config, tokens, batch).to_dict(),
    }


def _predicted(
    predictor: LatencyPredictor | None, config: ArchConfig, tokens: int, batch: int
) -> dict[str, Any] | None:
    if predictor is None:
        return None
    return predictor.predict(config, tokens, batch).to_dict()


def forward_timings(
    config: ArchConfig,
    tokens: int,
    batch: int,
    threads: int,
    timing: TimingOptions,
    model: Any = None,
) -> dict[str, Any]:
    """Forward latency on the wall clock (and the CPU clock on one thread); ``model`` times a
    given module (``compress``) instead of a fresh one."""
    clocks = ("wall", "cpu") if threads == 1 else ("wall",)
    out = {}
    for clock in clocks:
        options = TimingOptions(**{**timing.__dict__, "clock": clock})
        out[clock] = measure_forward(
            config, tokens, batch, threads=threads, options=options, model=model
        )
    return {clock: stats.to_dict() for clock, stats in out.items()}


def measure_arch(
    config: ArchConfig,
    profile: Profile,
    *,
    seq_lens: Sequence[int] = (),
    options: MeasureOptions | None = None,
    batch: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The report ``archsearch measure`` prints (``batch``/``threads`` override the workload)."""
    options = options or MeasureOptions()
    workload = profile.workload
    batch = batch or workload.batch_size
    threads = threads or workload.threads
    tokens = workload.tokens_for(profile.convention)
    costs = estimate_costs(config, profile)
    predictor = load_predictor(threads)
    report: dict[str, Any] = {
        "profile": profile.name,
        **costs.to_dict(),
        "workload": {"batch_size": batch, "tokens": tokens, "threads": threads},
        "memory": _memory(config, tokens, batch),
        "latency": {
            "predictor": None if predictor is None else _predictor_info(predictor, threads),
            "predicted": _predicted(predictor, config, tokens, batch),
        },
    }
    if workload.device is not None:
        report["latency"]["device"] = _device_predicted(workload.device, config, tokens, batch)
    if options.latency:
        report["latency"]["forward"] = forward_timings(
            config, tokens, batch, threads, options.timing
        )
        if config.task == "causal_lm":
            report["latency"]["generation"] = measure_generation(
                config,
                tokens,
                options.generate,
                batch,
                threads=threads,
                options=options.timing,
            ).to_dict()
    report["budgets"] = _budgets(profile, costs, config, predictor)
    over = [b["reason"] for b in report["budgets"].values() if b.get("reason")]
    report.update(within_budget=not over, over_budget=over)
    if seq_lens:
        report["seq_lens"] = [
            _at_length(config, profile, t, batch, threads, predictor, options) for t in seq_lens
        ]
    return report


def _device_predicted(
    device: str, config: ArchConfig, tokens: int, batch: int
) -> dict[str, Any] | None:
    """Latency on the profile's device, per part (HAT: encoder and decoder), when fitted."""
    from archsearch.costs.device import load_device_predictor

    predictor = load_device_predictor(device)
    if predictor is None:
        return None
    prediction = predictor.predict(config, tokens, batch)
    return {
        "device": device,
        "parts_ms": predictor.predict_parts(config, tokens, batch),
        **prediction.to_dict(),
        "timed": predictor.workload.get("timed"),
    }


def _predictor_info(predictor: LatencyPredictor, threads: int) -> dict[str, Any]:
    validation = predictor.validation
    return {
        "path": str(cache_path(threads)),
        "clock": predictor.machine.get("clock", "wall"),
        "samples": validation.get("samples"),
        "mape": validation.get("mape"),
        "sigma_log": predictor.sigma_log,
    }


def _budgets(
    profile: Profile, costs: Any, config: ArchConfig, predictor: LatencyPredictor | None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    device = profile.workload.device
    if device is not None:  # the budget's latency is the device's, not this machine's
        from archsearch.costs.device import load_device_predictor

        available = load_device_predictor(device) is not None
        missing = f"no latency predictor for device {device}: run archsearch calibrate --from-csv"
    else:
        available, missing = predictor is not None, "no latency predictor: run archsearch calibrate"
    for name, limit in profile.budgets.items():
        metric = COST_METRICS[name]
        if metric.needs == "predictor" and not available:
            out[name] = {
                "limit": limit,
                "value": None,
                "unit": metric.unit,
                "reason": None,
                "note": missing,
            }
            continue
        value = profile.metric(name, costs, config)
        reasons = [r for r in profile.over_budget(costs, config) if r.startswith(f"{name} ")]
        out[name] = {
            "limit": limit,
            "value": value,
            "unit": metric.unit,
            "within": value <= limit,
            "reason": reasons[0] if reasons else None,
        }
    return out


def _at_length(
    config: ArchConfig,
    profile: Profile,
    tokens: int,
    batch: int,
    threads: int,
    predictor: LatencyPredictor | None,
    options: MeasureOptions,
) -> dict[str, Any]:
    """Figures with the convention's (and workload's) tokens replaced by ``tokens``."""
    note = None
    if tokens > config.max_seq_len:
        note = f"max_seq_len raised from {config.max_seq_len} to {tokens}"
        config = config.replace(max_seq_len=tokens)
    convention = CountingConvention(
        tokens=tokens, source_tokens=tokens, exclude=profile.convention.exclude
    )
    costs = estimate_costs(config, convention)
    row: dict[str, Any] = {
        "tokens": tokens,
        "macs": costs.macs,
        "total_macs": costs.total_macs,
        "params": costs.params,
        "memory": {k: v["peak"] for k, v in _memory(config, tokens, batch).items()},
        "kv_cache": generation_memory(config, tokens, batch).parts["cache"],
        "predicted_ms": None,
        "measured_ms": None,
        "note": note,
    }
    predicted = _predicted(predictor, config, tokens, batch)
    if predicted is not None:
        row["predicted_ms"] = predicted["ms"]
    if options.latency:
        if costs.total_macs * batch <= MAX_TIMED_MACS:
            clock = "cpu" if threads == 1 else "wall"
            timing = TimingOptions(**{**options.sweep_timing.__dict__, "clock": clock})
            stats = measure_forward(config, tokens, batch, threads=threads, options=timing)
            row["measured_ms"] = stats.median
            row["measured_iqr_ms"] = stats.iqr
            row["measured_clock"] = clock
        else:
            row["note"] = "; ".join(filter(None, [note, "too long to time here: not measured"]))
    return row


def remeasure_latency(
    config: ArchConfig, profile: Profile, *, timing: TimingOptions | None = None
) -> dict[str, Any]:
    """Predicted and measured forward latency of the profile's workload, for candidates timed
    alone once a search is over (during a search, trials only use the predictor: timing while
    other trials train measures the load). ``measured_ms`` is on the predictor's clock, so the
    two figures compare; the wall clock is reported beside it."""
    workload = profile.workload
    tokens, threads = workload.tokens_for(profile.convention), workload.threads
    predictor = load_predictor(threads)
    timing = timing or TimingOptions(min_time_s=0.5, max_time_s=5.0)
    timings = forward_timings(config, tokens, workload.batch_size, threads, timing)
    clock = predictor.machine.get("clock", "wall") if predictor is not None else "wall"
    clock = clock if clock in timings else "wall"
    predicted = _predicted(predictor, config, tokens, workload.batch_size)
    return {
        "tokens": tokens,
        "batch_size": workload.batch_size,
        "threads": threads,
        "clock": clock,
        "measured_ms": timings[clock]["median_ms"],
        "predicted_ms": None if predicted is None else predicted["ms"],
        "predicted": predicted,
        "timings": timings,
    }
