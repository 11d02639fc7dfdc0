"""A family's settings: each a ``LayerConfig`` field with its default and its check.

The checks answer as the YAML readers do (``archsearch.checks``), naming the setting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from archsearch.checks import check_integer, check_number
from archsearch.errors import InputError

Check = Callable[[str, Any], None]


@dataclass(frozen=True)
class Setting:
    """One per-layer key a family reads: ``name: annotation = default``, checked by ``check``."""

    name: str
    annotation: str  # type as written in the dataclass ("int", "float", "str")
    default: Any
    check: Check
    help: str = ""


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{value!r} is not one of {', '.join(allowed)}", key=name)


def integer(minimum: int) -> Check:
    def check(name: str, value: Any) -> None:
        check_integer(name, value, minimum=minimum)

    return check


def number(low: float, high: float | None = None, *, low_open: bool = False) -> Check:
    def check(name: str, value: Any) -> None:
        check_number(name, value, low=low, high=high, low_open=low_open)

    return check


def choice(allowed: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> None:
        check_choice(name, value, allowed)

    return check
