"""How numbers look in reports: counts in millions, quality to four places, missing as a dash."""

from __future__ import annotations

import math

# Counts, shown in millions; ``proxy_params`` is the parameter-count proxy's score.
COUNTS = ("macs", "params", "total_params", "weight_bytes", "weight_bytes_int8", "proxy_params")
MISSING = "-"


def millions(value: float) -> str:
    return f"{value / 1e6:.2f}M"


def format_value(name: str, value: float | None) -> str:
    """A metric as a table cell: MACs and parameters in millions, other metrics to 4 places."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if name in COUNTS:
        return millions(value)
    return f"{value:.4f}"


def objective_label(name: str, direction: str) -> str:
    """A column header: the objective's name, marked ``(max)`` where higher is better (every
    other objective, costs and ``val_bpb``, is minimised)."""
    return f"{name} (max)" if direction == "maximize" else name


def short_number(value: float) -> str:
    """Compact, for quantities spanning many orders of magnitude (hours, kWh, ratios)."""
    if value == 0:
        return "0"
    if 0.01 <= abs(value) < 10_000:
        return f"{value:.3g}"
    return f"{value:.2e}"
