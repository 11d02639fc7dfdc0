"""Calibration on this machine: build the latency predictor, and the calibration report.

``calibrate`` times random architectures drawn from search spaces (each at a random sequence
length and batch), fits ``predictor.fit_predictor`` and stores it in the per-machine cache.

``calibration_report`` puts every figure archsearch predicts next to its measurement, one
representative architecture per family: MACs (analytic vs ``FlopCounterMode``), peak memory
(analytic vs the live-tensor tracker, inference and training) and forward latency (predicted vs
measured). The family architectures are fixed here and are never among the random calibration
samples (their ``max_seq_len`` alone differs), so their latency errors are held out.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from archsearch.config import ArchConfig
from archsearch.costs.analytic import analytic_costs
from archsearch.costs.convention import CountingConvention
from archsearch.costs.cuda_memory import cuda_available, measure_on_device, release
from archsearch.costs.latency import TimingOptions, measure_forward
from archsearch.costs.peak_bytes import inference_memory, training_memory
from archsearch.costs.predictor import (
    LatencyPredictor,
    Sample,
    cache_path,
    fit_predictor,
    latency_features,
    load_predictor,
    machine_info,
)
from archsearch.costs.tracker import model_inputs
from archsearch.errors import InputError
from archsearch.families import all_specs, attention_spec, memory_specs, names
from archsearch.seeding import seeded

FAMILIES = "families"  # a source of its own: architectures with one family in every layer
DEFAULT_SPACES = ("efficient_lm", FAMILIES, "efficient_lm", FAMILIES, "tiny_lm")  # in turn
DEFAULT_SEQ_LENS = (32, 64, 128, 256)
DEFAULT_BATCHES = (1, 1, 1, 2)
MAX_SAMPLE_MACS = 1.5e9  # keeps one timed forward around 0.1 s here, so calibration takes minutes


def calibration_timing(threads: int) -> TimingOptions:
    """Short, adaptive timing per sample; the CPU clock where it is valid (one thread), so a
    loaded machine is calibrated on what forwards cost rather than on how busy it was."""
    return TimingOptions(
        warmup=1,
        min_repeats=3,
        max_repeats=50,
        min_time_s=0.1,
        max_time_s=1.0,
        rel_error=0.03,
        clock="cpu" if threads == 1 else "wall",
    )


Progress = Callable[[int, int, Sample], None]


@dataclass(frozen=True)
class TimingCase:
    """One architecture to time, at one sequence length and batch size."""

    config: ArchConfig
    tokens: int
    batch: int


def sample_timing_cases(
    count: int,
    *,
    seed: int = 0,
    spaces: Sequence[str] | None = None,
    seq_lens: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    max_macs: float | None = None,
) -> list[TimingCase]:
    """``count`` random valid architectures from ``spaces`` (in turn), each with a random length
    and batch, skipping those over ``max_macs`` per forward (they would take too long to time).
    Unset arguments take this module's ``DEFAULT_*`` / ``MAX_SAMPLE_MACS`` when called."""
    from archsearch.space import load_space

    spaces = spaces or DEFAULT_SPACES
    seq_lens = seq_lens or DEFAULT_SEQ_LENS
    batches = batches or DEFAULT_BATCHES
    max_macs = max_macs if max_macs is not None else MAX_SAMPLE_MACS
    rng = random.Random(seed)
    loaded = [None if name == FAMILIES else load_space(name) for name in spaces]
    cases: list[TimingCase] = []
    attempts = 0
    while len(cases) < count:
        attempts += 1
        if attempts > 200 * count:
            raise RuntimeError("could not draw enough affordable architectures")
        space = loaded[len(cases) % len(loaded)]
        tokens, batch = rng.choice(list(seq_lens)), rng.choice(list(batches))
        try:
            if space is None:
                config = single_family(rng)
            else:
                values = space.sample(rng)
                if space.violations(values):
                    continue
                config = space.to_config(values)
            if tokens > config.max_seq_len:
                config = config.replace(max_seq_len=tokens)
            costs = analytic_costs(config, CountingConvention(tokens=tokens, exclude=()))
        except InputError:
            continue
        if costs.total_macs * batch > max_macs:
            continue
        cases.append(TimingCase(config, tokens, batch))
    return cases


def single_family(rng: random.Random) -> ArchConfig:
    """A random architecture with one attention and one feed-forward family in every layer, so
    each family's own cost is seen apart from the others' (search spaces mix them per layer).
    Raises ``InputError`` for the odd invalid combination; the caller draws again."""
    attention = rng.choice(sorted(names("attention")))
    ffn = rng.choice(["dense", "dense", *sorted(names("ffn"))])
    settings: dict[str, Any] = {
        "vocab_size": 256,
        "max_seq_len": 256,
        "d_model": rng.choice([64, 128, 192, 256, 384]),
        "n_layers": rng.randint(1, 4),
        "heads": rng.choice([2, 4]),
        "ffn_ratio": rng.choice([1, 2, 4]),
        "attention": attention,
        "ffn": ffn,
        "window": rng.choice([16, 32, 64]) if attention == "local" else 0,
        "dilation": rng.choice([1, 1, 2]) if attention == "local" else 1,
        "linformer_k": rng.choice([32, 64, 128]),
        "performer_features": rng.choice([32, 64, 128]),
        "lsh_bucket_size": rng.choice([16, 32, 64]),
        "lsh_hashes": rng.choice([1, 2, 4]),
        "lsra_split": 0.5,
        "conv_kernel": rng.choice([3, 7, 15]),
        "conv_type": rng.choice(["lightweight", "dynamic"]),
        "experts": rng.choice([2, 4, 8]) if ffn == "switch_moe" else 1,
        "sparsity": rng.choice([2, 4, 8]) if ffn == "sparse" else 1,
    }
    if attention_spec(attention).reads_memory and rng.random() < 0.3:
        settings.update(memory="xl", mem_len=rng.choice([32, 64, 128]))
    return ArchConfig.from_dict(settings)


def measure_sample(case: TimingCase, threads: int, options: TimingOptions) -> Sample:
    stats = measure_forward(case.config, case.tokens, case.batch, threads=threads, options=options)
    return Sample(
        arch=case.config.to_dict(),
        tokens=case.tokens,
        batch=case.batch,
        median_ms=stats.median,
        iqr_ms=stats.iqr,
        features=latency_features(case.config, case.tokens, case.batch),
    )


def calibrate(
    samples: int = 100,
    *,
    threads: int = 1,
    seed: int = 0,
    spaces: Sequence[str] | None = None,
    seq_lens: Sequence[int] | None = None,
    max_macs: float | None = None,
    options: TimingOptions | None = None,
    progress: Progress | None = None,
    save: bool = True,
    repeat: int = 10,
) -> LatencyPredictor:
    """Time ``samples`` random cases with ``threads`` threads, fit, and store the predictor
    in this machine's cache (``predictor.cache_path``). The first ``repeat`` cases are timed
    a second time: their run-to-run difference is the noise floor the predictor's held-out
    error should be read against."""
    options = options or calibration_timing(threads)
    spaces = spaces or DEFAULT_SPACES
    cases = sample_timing_cases(
        samples, seed=seed, spaces=spaces, seq_lens=seq_lens, max_macs=max_macs
    )
    measured: list[Sample] = []
    for index, case in enumerate(cases):
        sample = measure_sample(case, threads, options)
        measured.append(sample)
        if progress is not None:
            progress(index + 1, len(cases), sample)
    info = machine_info(threads)
    info.update(spaces=list(spaces), seed=seed, clock=options.clock)
    predictor = fit_predictor(measured, seed=seed, machine=info)
    if repeat:
        predictor.validation["repeatability"] = repeatability(
            cases[:repeat], measured[:repeat], threads, options
        )
    if save:
        predictor.save(cache_path(threads))
    return predictor


def repeatability(
    cases: Sequence[TimingCase],
    first: Sequence[Sample],
    threads: int,
    options: TimingOptions,
) -> dict[str, Any]:
    """Time cases again; the mean absolute relative difference between the two medians."""
    differences = []
    for case, sample in zip(cases, first, strict=True):
        again = measure_sample(case, threads, options)
        differences.append(abs(again.median_ms / sample.median_ms - 1.0))
    return {
        "samples": len(differences),
        "mean_abs_difference": sum(differences) / len(differences),
        "max_abs_difference": max(differences),
    }


# ---- calibration report ------------------------------------------------------------------------

BASE_ARCH: dict[str, Any] = {
    "vocab_size": 256,
    "max_seq_len": 1024,
    "d_model": 128,
    "n_layers": 2,
    "heads": 4,
    "ffn_ratio": 2,
}


def _family_archs() -> dict[str, dict[str, Any]]:
    """Each family's calibration example (from its spec), then a seq2seq model."""
    archs: dict[str, dict[str, Any]] = {}
    for spec in all_specs():
        example = spec.example("calibration")
        if example is not None:
            archs[f"{spec.kind}={spec.name}"] = {spec.kind: spec.name, **example}
    for memory in memory_specs().values():
        example = memory.example("calibration")
        if example is not None:
            archs[f"memory={memory.name}"] = example
    archs["task=seq2seq"] = {"task": "seq2seq", "n_encoder_layers": 2}
    return archs


FAMILY_ARCHS: dict[str, dict[str, Any]] = _family_archs()


def family_configs() -> dict[str, ArchConfig]:
    """One representative architecture per family (full attention, dense FFN, no memory
    unless the family says otherwise)."""
    return {
        name: ArchConfig.from_dict({**BASE_ARCH, **extra}) for name, extra in FAMILY_ARCHS.items()
    }


def _relative(predicted: float, measured: float) -> float:
    return predicted / measured - 1.0 if measured else float("nan")


def check_family(
    config: ArchConfig,
    *,
    memory_tokens: int = 256,
    memory_batch: int = 4,
    latency_tokens: int = 128,
    threads: int = 1,
    predictor: LatencyPredictor | None = None,
    options: TimingOptions | None = None,
) -> dict[str, Any]:
    """MACs, memory and latency of one architecture, analytic or predicted against measured."""
    from archsearch.costs.reference import measured_macs
    from archsearch.costs.tracker import measure_inference, measure_training
    from archsearch.models import build_model

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with seeded(0):
            model = build_model(config).eval()
            inputs, state = model_inputs(config, latency_tokens, 1)
            kwargs = {} if state is None else {"state": state}
            counted = measured_macs(model, *inputs, **kwargs)["total"]
            convention = CountingConvention(tokens=latency_tokens, exclude=())
            analytic = analytic_costs(config, convention).total_macs
            inputs, state = model_inputs(config, memory_tokens, memory_batch)
            measure_inference(model, inputs, state)  # warm: cached masks are built once
            inference = measure_inference(model, inputs, state).peak
            training = measure_training(model, inputs, inputs[0], state).peak
            on_gpu = measure_on_device(model, inputs, state) if cuda_available() else None
            del model, inputs, state  # frees the device before the next family
    finally:
        torch.set_num_threads(previous)
    memory_inf = inference_memory(config, memory_tokens, memory_batch).peak
    memory_train = training_memory(config, memory_tokens, memory_batch).peak
    memory: dict[str, Any] = {
        "tokens": memory_tokens,
        "batch": memory_batch,
        "inference": {
            "analytic": memory_inf,
            "measured": inference,
            "error": _relative(memory_inf, inference),
        },
        "training": {
            "analytic": memory_train,
            "measured": training,
            "error": _relative(memory_train, training),
        },
    }
    if on_gpu is not None:
        release()
        memory["device"] = on_gpu.device
        memory["inference"]["cuda"] = on_gpu.inference
        memory["inference"]["cuda_error"] = _relative(memory_inf, on_gpu.inference)
        memory["training"]["cuda"] = on_gpu.training
        memory["training"]["cuda_error"] = _relative(memory_train, on_gpu.training)
    stats = measure_forward(config, latency_tokens, 1, threads=threads, options=options)
    latency: dict[str, Any] = {"tokens": latency_tokens, "batch": 1, "measured": stats.to_dict()}
    if predictor is not None:
        try:
            predicted = predictor.predict(config, latency_tokens, 1)
        except InputError as exc:  # a family the predictor never saw: say so, do not guess
            latency["note"] = exc.message
        else:
            latency["predicted"] = predicted.to_dict()
            latency["error"] = _relative(predicted.ms, stats.median)
            latency["within_interval"] = predicted.low_ms <= stats.median <= predicted.high_ms
    return {
        "arch": config.to_dict(),
        "macs": {
            "tokens": latency_tokens,
            "analytic": analytic,
            "measured": counted,
            "error": _relative(analytic, counted),
        },
        "memory": memory,
        "latency": latency,
    }


def calibration_report(
    *,
    threads: int = 1,
    families: dict[str, ArchConfig] | None = None,
    memory_tokens: int = 256,
    memory_batch: int = 4,
    latency_tokens: int = 128,
    options: TimingOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Per family: MACs, memory and latency next to their measurements; plus the predictor's
    cross-validated figures when this machine has one. Where a CUDA device is present, memory is
    also measured there (``archsearch.costs.cuda_memory``: the allocator's own peak)."""
    predictor = load_predictor(threads)
    if options is None:  # time on the clock the predictor was calibrated on
        clock = (
            predictor.machine.get("clock", "wall")
            if predictor
            else calibration_timing(threads).clock
        )
        options = TimingOptions(min_time_s=0.3, max_time_s=2.0, rel_error=0.02, clock=clock)
    rows: dict[str, Any] = {}
    for name, config in (families or family_configs()).items():
        if progress is not None:
            progress(name)
        rows[name] = check_family(
            config,
            memory_tokens=memory_tokens,
            memory_batch=memory_batch,
            latency_tokens=latency_tokens,
            threads=threads,
            predictor=predictor,
            options=options,
        )
    return {
        "machine": machine_info(threads),
        "predictor": None
        if predictor is None
        else {
            "path": str(cache_path(threads)),
            "features": list(predictor.features),
            "validation": {k: v for k, v in predictor.validation.items() if k != "predicted_ms"},
        },
        "families": rows,
        "summary": _summary(rows),
        "notes": [
            "memory: peak live tensor bytes (archsearch.costs.tracker)"
            + (
                "; 'cuda': torch.cuda.max_memory_allocated above the cuBLAS workspaces"
                if cuda_available()
                else "; no CUDA device here, so the GPU allocator is not measured"
            ),
            "latency: measured on a shared machine; figures include its load",
        ],
    }


def _summary(rows: dict[str, Any]) -> dict[str, Any]:
    def worst(path: Sequence[str]) -> float:
        values = []
        for row in rows.values():
            node: Any = row
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, (int, float)):
                values.append(abs(node))
        return max(values) if values else float("nan")

    latency = [abs(r["latency"]["error"]) for r in rows.values() if "error" in r["latency"]]
    summary = {
        "max_abs_macs_error": worst(("macs", "error")),
        "max_abs_inference_memory_error": worst(("memory", "inference", "error")),
        "max_abs_training_memory_error": worst(("memory", "training", "error")),
        "latency_mape_held_out": sum(latency) / len(latency) if latency else None,
    }
    if any("device" in row["memory"] for row in rows.values()):
        summary["max_abs_cuda_inference_memory_error"] = worst(
            ("memory", "inference", "cuda_error")
        )
        summary["max_abs_cuda_training_memory_error"] = worst(("memory", "training", "cuda_error"))
    return summary
