"""The quality objective of a study: its name and direction, decided by the evaluator recipe.

A training recipe measures validation loss: ``val_bpb``, minimised. A zero-cost proxy recipe
(``proxy: <name>``) scores the untrained model instead: ``proxy_<name>``, maximised (every proxy
in ``evaluate/proxies.py`` is higher-is-better). A training recipe with ``blend: {proxy,
weight}`` trains as usual and scores ``val_bpb - weight * proxy``: ``blended_bpb``, minimised.
The cost objectives of the profile are always minimised.

The driver records the quality in the study (user attribute ``quality``, and Optuna's own study
directions, which optuna-dashboard reads), and everything that reads results asks
``study_quality`` instead of assuming ``val_bpb``. Studies from before this record existed are
read as ``val_bpb``, minimised, which is what they measured.

Kept free of torch, Ray and Optuna imports: reports and the CLI read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archsearch.errors import InputError
from archsearch.evaluate.recipe import Blend, Recipe

STUDY_ATTR = "quality"  # study user attribute: {"name", "direction", "proxy", "blend"}
MINIMIZE, MAXIMIZE = "minimize", "maximize"  # Optuna's words for a study direction
PROXY_PREFIX = "proxy_"
BLENDED = "blended_bpb"
SUPERNET = "supernet_bpb"  # validation bpb of the inherited-weights sub-network, minimised
BLEND_ATTR = "blend_proxy"  # a blended score's proxy value, kept on each trial beside val_bpb


@dataclass(frozen=True)
class Quality:
    """The quality objective: what it is called, which way is better, which proxy (if any)
    replaces training, or which proxy is blended into the trained score (``blend``)."""

    name: str = "val_bpb"
    direction: str = MINIMIZE
    proxy: str | None = None
    blend: Blend | None = None
    supernet: bool = False  # scored by a weight-sharing supernet's inherited weights

    def __post_init__(self) -> None:
        if self.direction not in (MINIMIZE, MAXIMIZE):
            raise ValueError(f"direction must be {MINIMIZE} or {MAXIMIZE}, got {self.direction!r}")

    @property
    def maximize(self) -> bool:
        return self.direction == MAXIMIZE

    @property
    def mode(self) -> str:
        """Ray Tune's word for the direction."""
        return "max" if self.maximize else "min"

    @property
    def trains(self) -> bool:
        """True when the value comes from training (learning curves, early stopping apply)."""
        return self.proxy is None and not self.supernet

    @property
    def best_word(self) -> str:
        """``lowest`` or ``highest``: how reports say which value is best."""
        return "highest" if self.maximize else "lowest"

    def describe(self) -> str:
        """What the value means, in a short clause for report notes."""
        if self.blend is not None:
            blend = self.blend
            return (
                f"{self.name}, validation bits per byte after brief training minus "
                f"{blend.weight:g} x the untrained model's {blend.proxy} (lower is better)"
            )
        if self.supernet:
            return (
                f"{self.name}, validation bits per byte of the sub-network with weights inherited "
                "from the space's trained supernet, less its layers' family offsets where the "
                "recipe measures them (lower is better)"
            )
        if self.proxy is None:
            return f"{self.name}, validation bits per byte after brief training (lower is better)"
        return (
            f"{self.name}, the zero-cost proxy {self.proxy} of the untrained model "
            "(higher is predicted better)"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "direction": self.direction, "proxy": self.proxy}
        if self.supernet:
            out["supernet"] = True
        if self.blend is not None:
            out["blend"] = {"proxy": self.blend.proxy, "weight": self.blend.weight}
        return out


# The default quality: validation bits per byte, minimised. Studies that recorded no quality
# (written before it was recorded) measured it too.
DEFAULT_QUALITY = Quality()


def quality_of(recipe: Recipe) -> Quality:
    """The quality objective a recipe measures."""
    if recipe.scores_by_proxy:
        return Quality(name=f"{PROXY_PREFIX}{recipe.proxy}", direction=MAXIMIZE, proxy=recipe.proxy)
    if recipe.blend is not None:
        return Quality(name=BLENDED, blend=recipe.blend)
    if recipe.supernet is not None:
        return Quality(name=SUPERNET, supernet=True)
    return DEFAULT_QUALITY


def study_quality(study: Any) -> Quality:
    """The quality objective recorded in an Optuna study (the default when none was recorded)."""
    return quality_from_attrs(study.user_attrs)


def quality_from_attrs(attrs: dict[str, Any]) -> Quality:
    """``study_quality`` from a study's user attributes."""
    record = attrs.get(STUDY_ATTR)
    if not isinstance(record, dict):
        return DEFAULT_QUALITY
    direction = record.get("direction", MINIMIZE)
    if direction not in (MINIMIZE, MAXIMIZE):
        raise InputError(
            f"the study records quality direction {direction!r}, neither {MINIMIZE} nor {MAXIMIZE}",
            key="--study",
        )
    blend = record.get("blend")
    return Quality(
        name=str(record.get("name", DEFAULT_QUALITY.name)),
        direction=direction,
        proxy=record.get("proxy"),
        blend=Blend(str(blend["proxy"]), float(blend["weight"]))
        if isinstance(blend, dict)
        else None,
        supernet=bool(record.get("supernet", False)),
    )
