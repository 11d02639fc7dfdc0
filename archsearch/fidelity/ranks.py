"""Rank correlations (Kendall tau-b with a bootstrap interval, Spearman), written here: scipy is
not a dependency. Every one is signed by the caller so that +1 means "ranks like the reference".
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any


def rankdata(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks; NaN if one is constant."""
    _check_pair(x, y)
    return _pearson(rankdata(x), rankdata(y))


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)).

    A pair tied in x or in y counts neither way, and the pairs tied in x (in y) are left out
    of the x (y) factor of the denominator; NaN if one side is constant. O(n^2), which is
    nothing for the dozens of configurations a fidelity run trains.
    """
    _check_pair(x, y)
    concordant = discordant = tied_x = tied_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            tied_x += dx == 0
            tied_y += dy == 0
            if dx * dy > 0:
                concordant += 1
            elif dx * dy < 0:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - tied_x) * (pairs - tied_y))
    if denominator == 0:
        return math.nan
    return (concordant - discordant) / denominator


def _check_pair(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"need two sequences of one length, got {len(x)} and {len(y)}")
    if any(math.isnan(v) for v in (*x, *y)):
        raise ValueError("rank correlation of NaN values is undefined: drop them first")


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _pearson(x: list[float], y: list[float]) -> float:
    n = len(x)
    if n < 2:
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.95


def kendall_tau_interval(
    x: Sequence[float],
    y: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = BOOTSTRAP_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of Kendall's tau-b, resampling configurations.

    Why: a dozen configurations pin tau down only loosely (one reordered pair moves it by
    0.03, three changed values can move it by 0.4), so a report gives the range that
    resampling the same configurations yields. Seeded, so a report reprints the same interval.
    Resamples with a constant side (tau undefined) are skipped; NaN if all are.
    """
    _check_pair(x, y)
    rng = random.Random(seed)
    n = len(x)
    taus = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        tau = kendall_tau([x[i] for i in picks], [y[i] for i in picks])
        if not math.isnan(tau):
            taus.append(tau)
    if not taus:
        return math.nan, math.nan
    taus.sort()
    tail = (1 - level) / 2
    low = taus[math.floor(tail * (len(taus) - 1))]
    high = taus[math.ceil((1 - tail) * (len(taus) - 1))]
    return low, high


def correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Kendall tau-b (with its bootstrap interval) and Spearman over the pairs where both
    values are finite."""
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    enough = len(pairs) >= 2
    interval = kendall_tau_interval(xs, ys) if enough else (math.nan, math.nan)
    return {
        "kendall_tau": kendall_tau(xs, ys) if enough else math.nan,
        "kendall_tau_interval": list(interval),
        "spearman": spearman(xs, ys) if enough else math.nan,
        "n": len(pairs),
    }
