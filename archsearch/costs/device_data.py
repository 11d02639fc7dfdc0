"""Latency measured on another device, read from CSV: HAT's published format and a generic one.

A device predictor (``archsearch.costs.device``) is fitted on rows of (architecture, measured
latency). Two formats are read:

- ``hat``: the files of HAT's ``latency_dataset/`` (Wang et al., ACL 2020; MIT licence, the HAT
  authors): one SubTransformer per row, described by ten aggregate columns (widths, depths, mean
  per-layer FFN widths and head counts, and ``decoder_arbitrary_ende_attn_avg``, the mean number
  of last encoder layers a decoder layer's cross-attention reads, 1 to 3: HAT's code writes its
  -1/1/2 choices as 1/2/3 before averaging), then ``latency_mean_encoder`` and
  ``latency_mean_decoder`` in milliseconds (and their ``latency_std_*``, not used).
- ``generic``: one architecture per row, its columns ``ArchConfig`` keys as a search space's
  parameters are named (``d_model``, ``n_layers``, ``heads`` for every layer or ``heads.0``,
  ``heads.1``, ... per layer, ``encoder_ffn_dim.3``, ...; an empty cell is a key not set, so a
  shallower row leaves its deeper per-layer cells empty), plus ``latency_ms`` (required: one
  forward, milliseconds), ``tokens`` (required: tokens per sequence; seq2seq: source and target
  each), ``batch`` (default 1) and the optional notes ``latency_iqr_ms``, ``repeats``,
  ``warmup``, ``threads``, ``clock`` and ``device``, which are kept but not fitted.
  ``scripts/collect_latency.py`` writes it.

Every problem is one ``InputError`` naming the file, the line (the header is line 1) and
column, and what is wrong. Torch-free: a predictor is fitted where the CSV is, not the device.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archsearch.config import ArchConfig
from archsearch.errors import InputError
from archsearch.space import ARCH_KEYS

FORMATS = ("auto", "hat", "generic")
MAX_BYTES = 64 * 2**20  # a latency table of a million rows is far past any use; refuse at once
MIN_ROWS = 5  # the fit holds out 20%: at least 4 rows to fit and 1 to test (20+ to trust it)

HAT_FEATURES = (
    "encoder_embed_dim",
    "encoder_layer_num",
    "encoder_ffn_embed_dim_avg",
    "encoder_self_attention_heads_avg",
    "decoder_embed_dim",
    "decoder_layer_num",
    "decoder_ffn_embed_dim_avg",
    "decoder_self_attention_heads_avg",
    "decoder_ende_attention_heads_avg",
    "decoder_arbitrary_ende_attn_avg",
)
HAT_LATENCIES = {"encoder": "latency_mean_encoder", "decoder": "latency_mean_decoder"}
HAT_OPTIONAL = ("latency_std_encoder", "latency_std_decoder")
HAT_ATTRIBUTION = (
    "latency measurements from HAT: Hardware-Aware Transformers (Wang et al., ACL 2020), "
    "github.com/mit-han-lab/hardware-aware-transformers latency_dataset/, MIT licence, "
    "copyright the HAT authors"
)

GENERIC_REQUIRED = ("latency_ms", "tokens")
GENERIC_META = ("latency_ms", "tokens", "batch")
GENERIC_NOTES = ("latency_iqr_ms", "repeats", "warmup", "threads", "clock", "device")
_PER_LAYER = re.compile(r"^(?P<key>[A-Za-z_]+)\.(?P<index>[0-9]+)$")


@dataclass(frozen=True)
class HatRow:
    """One SubTransformer of a HAT file: its ten columns and its two latencies (ms)."""

    line: int
    values: dict[str, float]
    measured: dict[str, float]  # encoder, decoder


@dataclass(frozen=True)
class GenericRow:
    """One architecture timed on the device: one forward over ``batch`` x ``tokens``."""

    line: int
    arch: ArchConfig
    tokens: int
    batch: int
    latency_ms: float
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceTable:
    """What a file held: its format, its rows, and where it came from."""

    path: str
    format: str  # hat | generic
    rows: tuple[HatRow, ...] | tuple[GenericRow, ...]
    header: tuple[str, ...]

    @property
    def attribution(self) -> str:
        return HAT_ATTRIBUTION if self.format == "hat" else ""


def read_table(path: str | Path, format: str = "auto") -> DeviceTable:
    """Read ``path`` in ``format`` (``auto``: HAT's when its header has HAT's columns)."""
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r} (known: {', '.join(FORMATS)})", key="--format")
    source = str(path)
    header, lines = _read_csv(Path(path))
    if format == "auto":
        format = "hat" if set(HAT_FEATURES) <= set(header) else "generic"
    try:
        if format == "hat":
            rows: tuple[Any, ...] = tuple(_hat_rows(header, lines))
        else:
            rows = tuple(_generic_rows(header, lines))
    except InputError as exc:
        raise exc.located(source) from None
    if len(rows) < MIN_ROWS:
        raise InputError(
            f"has {len(rows)} data row(s); fitting and holding out 20% needs at least {MIN_ROWS}",
            source=source,
        )
    return DeviceTable(path=source, format=format, rows=rows, header=tuple(header))


# ---- the CSV itself ----------------------------------------------------------------------------


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(f"is {size / 2**20:.0f} MiB; at most 64 MiB", source=str(path))
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("no such file", source=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a CSV file", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text ({exc.reason})", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", source=str(path)) from None
    try:
        records = list(_records(text))
    except csv.Error as exc:
        raise InputError(f"is not valid CSV ({exc})", source=str(path)) from None
    if not records:
        raise InputError("is empty: a header line is needed", source=str(path))
    header = records[0][1]
    header = [name.strip() for name in header]
    seen: set[str] = set()
    for name in header:
        if not name:
            raise InputError("has an empty column name", key="line 1", source=str(path))
        if name in seen:
            raise InputError(f"names column {name!r} twice", key="line 1", source=str(path))
        seen.add(name)
    lines = []
    for number, cells in records[1:]:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(header):
            raise InputError(
                f"has {len(cells)} field(s) where the header has {len(header)}",
                key=f"line {number}",
                source=str(path),
            )
        lines.append((number, [cell.strip() for cell in cells]))
    return header, lines


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(text.splitlines(), strict=True)
    for cells in reader:
        yield reader.line_num, cells


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"not a number: {text!r}", key=where) from None
    if not math.isfinite(value):
        raise InputError(f"must be finite, got {text!r}", key=where)
    return value


def _positive(text: str, where: str) -> float:
    value = _number(text, where)
    if value <= 0:
        raise InputError(f"must be a positive number, got {text!r}", key=where)
    return value


# ---- HAT ---------------------------------------------------------------------------------------


def _hat_rows(header: list[str], lines: list[tuple[int, list[str]]]) -> Iterator[HatRow]:
    needed = (*HAT_FEATURES, *HAT_LATENCIES.values())
    missing = [name for name in needed if name not in header]
    if missing:
        raise InputError(
            f"missing column {missing[0]} (HAT's format has {', '.join(needed)}, then "
            f"{', '.join(HAT_OPTIONAL)})",
            key="line 1",
        )
    unknown = [name for name in header if name not in needed and name not in HAT_OPTIONAL]
    if unknown:
        raise InputError(f"unknown column {unknown[0]!r} for HAT's format", key="line 1")
    index = {name: header.index(name) for name in needed}
    for number, cells in lines:
        values = {}
        for name in HAT_FEATURES:
            where = f"line {number}, column {name}"
            check = _number if name == "decoder_arbitrary_ende_attn_avg" else _positive
            values[name] = check(cells[index[name]], where)  # the former: range checked below
        for name in ("encoder_layer_num", "decoder_layer_num"):
            if not values[name].is_integer():
                raise InputError(
                    f"a layer count must be a whole number, got {values[name]:g}",
                    key=f"line {number}, column {name}",
                )
        cross = values["decoder_arbitrary_ende_attn_avg"]
        if not 1.0 <= cross <= 3.0:
            raise InputError(
                f"{cross:g} is outside 1-3: the mean number of last encoder layers each decoder "
                "layer's cross-attention reads (HAT's -1/1/2 choices are written as 1/2/3)",
                key=f"line {number}, column decoder_arbitrary_ende_attn_avg",
            )
        measured = {
            part: _positive(cells[index[column]], f"line {number}, column {column}")
            for part, column in HAT_LATENCIES.items()
        }
        yield HatRow(line=number, values=values, measured=measured)


# ---- generic -----------------------------------------------------------------------------------


def generic_columns(header: Sequence[str]) -> dict[str, tuple[str, int | None]]:
    """Column -> (ArchConfig key, layer index or None); raises on a column no one knows."""
    out: dict[str, tuple[str, int | None]] = {}
    for name in header:
        if name in GENERIC_META or name in GENERIC_NOTES:
            continue
        match = _PER_LAYER.match(name)
        key, index = (match["key"], int(match["index"])) if match else (name, None)
        if key not in ARCH_KEYS and key != "task":
            raise InputError(
                f"unknown column {name!r}: not an ArchConfig key (nor {', '.join(GENERIC_META)} "
                f"or a note: {', '.join(GENERIC_NOTES)})",
                key="line 1",
            )
        if index is not None and key in ("n_layers", "n_encoder_layers"):
            raise InputError(f"column {name!r}: a layer count is not per layer", key="line 1")
        out[name] = (key, index)
    return out


def parse_cell(text: str) -> Any:
    """A cell as YAML would read a scalar: whole numbers, decimals, true/false, null, text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none", "~"):
        return None
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _generic_rows(header: list[str], lines: list[tuple[int, list[str]]]) -> Iterator[GenericRow]:
    missing = [name for name in GENERIC_REQUIRED if name not in header]
    if missing:
        raise InputError(
            f"missing column {missing[0]} (the generic format needs {', '.join(GENERIC_REQUIRED)}"
            " and ArchConfig keys; did you mean --format hat?)",
            key="line 1",
        )
    columns = generic_columns(header)
    where = {name: header.index(name) for name in header}
    for number, cells in lines:
        flat: dict[str, Any] = {}
        layered: dict[str, dict[int, Any]] = {}
        origin: dict[str, str] = {}
        for name, (key, index) in columns.items():
            text = cells[where[name]]
            if text == "":
                continue
            value = parse_cell(text)
            if index is None:
                if key in layered:
                    raise InputError(
                        f"is set, and so is {key}.N: give one or the other",
                        key=f"line {number}, column {name}",
                    )
                flat[key] = value
            else:
                if key in flat:
                    raise InputError(
                        f"is set, and so is {key}: give one or the other",
                        key=f"line {number}, column {name}",
                    )
                layered.setdefault(key, {})[index] = value
            origin[key] = name
        for key, by_index in layered.items():
            gaps = [i for i in range(max(by_index) + 1) if i not in by_index]
            if gaps:
                raise InputError(
                    f"{key}.{max(by_index)} is set but {key}.{gaps[0]} is empty",
                    key=f"line {number}, column {key}.{gaps[0]}",
                )
            flat[key] = [by_index[i] for i in sorted(by_index)]
        try:
            arch = ArchConfig.from_dict(flat)
        except InputError as exc:
            column = origin.get(exc.key or "", exc.key)
            raise InputError(
                exc.message, key=f"line {number}" + (f", column {column}" if column else "")
            ) from None
        latency = _positive(cells[where["latency_ms"]], f"line {number}, column latency_ms")
        tokens = _count(cells[where["tokens"]], f"line {number}, column tokens")
        batch = 1
        if "batch" in where and cells[where["batch"]]:
            batch = _count(cells[where["batch"]], f"line {number}, column batch")
        notes = {n: cells[where[n]] for n in GENERIC_NOTES if n in where and cells[where[n]]}
        yield GenericRow(number, arch, tokens, batch, latency, notes)


def _count(text: str, where: str) -> int:
    if not re.fullmatch(r"\+?[0-9]+", text) or int(text) < 1:
        raise InputError(f"must be a whole number >= 1, got {text!r}", key=where)
    return int(text)


# ---- writing -----------------------------------------------------------------------------------


def generic_record(
    arch: ArchConfig, tokens: int, batch: int, latency_ms: float, **notes: Any
) -> dict[str, Any]:
    """One row of the generic format, flat: per-layer lists become ``key.0``, ``key.1``, ..."""
    record: dict[str, Any] = {}
    for key, value in arch.to_dict().items():
        if isinstance(value, list):
            for index, item in enumerate(value):
                record[f"{key}.{index}"] = item
        else:
            record[key] = value
    record.update(tokens=tokens, batch=batch, latency_ms=latency_ms)
    record.update({k: v for k, v in notes.items() if k in GENERIC_NOTES})
    return record


def write_generic(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write records (``generic_record``) as one CSV; columns are their union, arch keys first."""
    columns: list[str] = []
    for record in records:
        for key in record:
            if key not in columns and key not in GENERIC_META and key not in GENERIC_NOTES:
                columns.append(key)
    notes = [n for n in GENERIC_NOTES if any(n in r for r in records)]
    columns += [*GENERIC_META, *notes]
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        for record in records:
            writer.writerow({k: _cell(v) for k, v in record.items()})
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
