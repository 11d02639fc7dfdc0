"""The statistics of a confirm: means with t-intervals over seeds, paired differences against
each baseline, and the sentences a report prints. Pure functions of numbers (no Optuna, no
torch), so each can be checked by hand.

Why paired: seed s of every model trains on the same data order and is validated on the same
bytes, so most seed-to-seed noise is shared; the difference baseline - candidate taken seed by
seed cancels it, and its interval is much narrower than comparing two means would give. Why a
t-interval: a confirm has a handful of seeds, where the normal quantile (1.96) would claim far
more certainty than the data hold. scipy is not a dependency, so the t quantile is computed here
(regularized incomplete beta by continued fraction, inverted by bisection).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

LEVEL = 0.95
BEATS, TIED, WORSE, UNDECIDED = "beats", "cannot be told apart", "worse", "one seed"


# ---- Student's t ----------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. t_quantile(0.975, 2) = 4.303), by bisection."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


# ---- estimates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` values with its two-sided t-interval; no interval (None) for n < 2."""

    mean: float
    n: int
    low: float | None = None
    high: float | None = None

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2.0

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """Mean of ``values`` and its ``level`` t-interval (mean +- t * s / sqrt(n))."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = sum(values) / n
    if n < 2:
        return Estimate(mean, n)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, n, mean - half, mean + half)


def paired_differences(
    baseline: Mapping[int, float], candidate: Mapping[int, float]
) -> list[float]:
    """baseline - candidate for each seed both ran (positive: the candidate is better), by seed."""
    seeds = sorted(set(baseline) & set(candidate))
    return [baseline[s] - candidate[s] for s in seeds]


# ---- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One candidate against one baseline, paired by seed (differences baseline - candidate)."""

    candidate: str
    baseline: str
    difference: Estimate
    macs_ratio: float | None  # candidate MACs / baseline MACs
    outcome: str
    sentence: str

    @property
    def detectable(self) -> float | None:
        """The smallest difference this comparison could tell from zero: the interval's
        half-width (a true difference smaller than this would have looked like a tie)."""
        return self.difference.half_width

    def to_dict(self) -> dict[str, object]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "difference": self.difference.to_dict(),
            "macs_ratio": self.macs_ratio,
            "outcome": self.outcome,
            "detectable": self.detectable,
            "sentence": self.sentence,
        }


def judge(
    candidate: str,
    baseline: str,
    candidate_runs: Mapping[int, float],
    baseline_runs: Mapping[int, float],
    *,
    macs_ratio: float | None = None,
    unit: str = "bpb",
    level: float = LEVEL,
) -> Comparison | None:
    """The paired verdict of ``candidate`` against ``baseline``; None when no seed ran both."""
    differences = paired_differences(baseline_runs, candidate_runs)
    if not differences:
        return None
    estimate = mean_interval(differences, level)
    outcome = _outcome(estimate)
    sentence = describe(candidate, baseline, estimate, outcome, macs_ratio, unit)
    return Comparison(candidate, baseline, estimate, macs_ratio, outcome, sentence)


def _outcome(estimate: Estimate) -> str:
    if estimate.low is None or estimate.high is None:
        return UNDECIDED
    if estimate.low > 0:
        return BEATS
    if estimate.high < 0:
        return WORSE
    return TIED


def describe(
    candidate: str,
    baseline: str,
    estimate: Estimate,
    outcome: str,
    macs_ratio: float | None,
    unit: str = "bpb",
) -> str:
    """The plain sentence for one comparison, e.g. "trial 14 beats the Transformer by 0.05 bpb
    [0.02, 0.08] at 45% of its MACs"."""
    the = f"the {baseline}"
    at = f" at {macs_ratio:.0%} of its MACs" if macs_ratio is not None else ""
    mean, low, high = estimate.mean, estimate.low, estimate.high
    if outcome == BEATS:
        return f"{candidate} beats {the} by {mean:.3g} {unit} [{low:.3g}, {high:.3g}]{at}"
    if outcome == WORSE:
        assert low is not None and high is not None
        return (
            f"{candidate} is worse than {the} by {-mean:.3g} {unit} [{-high:.3g}, {-low:.3g}]{at}"
        )
    if outcome == TIED:
        interval = f"{mean:+.3g} {unit} [{low:.3g}, {high:.3g}]"
        return f"{candidate} cannot be told apart from {the} ({interval}){at}"
    word = "better" if mean > 0 else "worse"
    return (
        f"{candidate} is {abs(mean):.3g} {unit} {word} than {the} on one seed{at}; "
        "one seed gives no interval (use --seeds 2 or more)"
    )


def detectable_sentence(comparison: Comparison, unit: str = "bpb") -> str:
    """How small a difference the comparison could have seen."""
    if comparison.detectable is None:
        return "one seed: no difference can be told from noise"
    return (
        f"differences under {comparison.detectable:.3g} {unit} could not have been detected "
        f"with {comparison.difference.n} paired seeds"
    )
