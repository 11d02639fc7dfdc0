"""Checks of user-supplied numbers shared by the YAML readers, so they all answer alike."""

from __future__ import annotations

import re
import sys
from typing import Any

from archsearch.errors import InputError

MAX_FLOAT = sys.float_info.max


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A finite number within the bounds; a number YAML read as text gets a hint."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = ""
        if isinstance(value, str) and looks_numeric(value):
            dotted = re.sub(r"^([+-]?\d+)([eE])", r"\1.0\2", value.strip())
            hint = f" (YAML reads {value} as text; write it with a dot: {dotted})"
        raise InputError(f"must be a number, got {value!r}{hint}", key=name)
    if value != value or not abs(value) <= MAX_FLOAT:  # NaN, infinities, ints past a float
        raise InputError(f"must be a finite number, got {value}", key=name)
    if low is not None and (value < low or (low_open and value == low)):
        raise InputError(f"must be {'>' if low_open else '>='} {low}, got {value}", key=name)
    if high is not None and (value > high or (high_open and value == high)):
        raise InputError(f"must be {'<' if high_open else '<='} {high}, got {value}", key=name)


def check_integer(
    name: str, value: Any, minimum: int | None = None, *, maximum: int | None = None
) -> None:
    """An integer (not a bool, not a float), within ``minimum`` and ``maximum`` when given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"must be an integer, got {value!r}", key=name)
    if minimum is not None and value < minimum:
        raise InputError(f"must be >= {minimum}, got {value}", key=name)
    if maximum is not None and value > maximum:
        raise InputError(f"must be <= {maximum}, got {value}", key=name)


def check_count(name: str, value: Any, *, minimum: int = 1) -> None:
    """An integer (not a bool, not a float) of at least ``minimum``: sizes, counts, threads."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise InputError(f"must be {wanted}, got {value!r}", key=name)


def looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
