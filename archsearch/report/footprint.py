"""Energy and CO2 of a search, under assumptions that are named, printed and easy to change.

Published search costs (the Evolved Transformer's 2.2e6 GPU hours and 6.3e5 lbs of CO2, as the
Lite Transformer paper quotes them from Strubell et al., 2019) follow Strubell et al.'s method:
measured power times a data-centre PUE of 1.58, converted at the US average of 0.954 lbs of CO2
per kWh. archsearch converts its own CPU time the same way, with an assumed power per busy CPU
core, so that the ratio of the two searches does not hinge on a different grid or PUE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

KG_PER_LB = 0.45359237

# The Evolved Transformer's architecture search (So et al., 2019) as the Lite Transformer paper
# (Wu et al., ICLR 2020) quotes it: about 250 GPU years and 626,155 lbs of CO2.
ET_SEARCH_GPU_HOURS = 2.2e6
ET_SEARCH_CO2_LBS = 6.3e5

WATTS_PER_CPU_CORE = 15.0  # one busy desktop/laptop core (a 65 W 4-core part at full load)
PUE = 1.58  # data-centre power usage effectiveness, as Strubell et al. assumed
LBS_CO2_PER_KWH = 0.954  # US average (EPA), as Strubell et al. assumed


@dataclass(frozen=True)
class Assumptions:
    """How CPU time becomes energy and CO2. Defaults: Strubell et al.'s PUE and grid factor."""

    watts_per_cpu_core: float = WATTS_PER_CPU_CORE
    pue: float = PUE
    lbs_co2_per_kwh: float = LBS_CO2_PER_KWH

    @property
    def kg_co2_per_kwh(self) -> float:
        return self.lbs_co2_per_kwh * KG_PER_LB

    def describe(self) -> list[str]:
        return [
            f"energy = CPU hours x {self.watts_per_cpu_core:g} W per busy core x PUE "
            f"{self.pue:g} (Strubell et al., 2019)",
            f"CO2 = energy x {self.lbs_co2_per_kwh:g} lbs/kWh ({self.kg_co2_per_kwh:.3f} kg/kWh,"
            " the US average Strubell et al. used for the Evolved Transformer figure)",
            f"Evolved Transformer energy derived from its published CO2 at the same factor; "
            f"{ET_SEARCH_GPU_HOURS:.1e} GPU hours and {ET_SEARCH_CO2_LBS:.1e} lbs CO2 as quoted by "
            "Lite Transformer (Wu et al., 2020)",
        ]

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "kg_co2_per_kwh": self.kg_co2_per_kwh}


@dataclass(frozen=True)
class Footprint:
    """Compute, energy and emissions of one search."""

    hours: float
    unit: str  # "CPU" or "GPU": what ``hours`` counts
    kwh: float
    co2_kg: float

    @property
    def co2_lbs(self) -> float:
        return self.co2_kg / KG_PER_LB

    def to_dict(self) -> dict[str, float | str]:
        return {**asdict(self), "co2_lbs": self.co2_lbs}


def cpu_footprint(cpu_seconds: float, assumptions: Assumptions) -> Footprint:
    hours = cpu_seconds / 3600.0
    kwh = hours * assumptions.watts_per_cpu_core / 1000.0 * assumptions.pue
    return Footprint(hours=hours, unit="CPU", kwh=kwh, co2_kg=kwh * assumptions.kg_co2_per_kwh)


def evolved_transformer_footprint(assumptions: Assumptions) -> Footprint:
    """The published figures; energy back-computed from the CO2 at the stated grid factor."""
    co2_kg = ET_SEARCH_CO2_LBS * KG_PER_LB
    return Footprint(
        hours=ET_SEARCH_GPU_HOURS,
        unit="GPU",
        kwh=ET_SEARCH_CO2_LBS / assumptions.lbs_co2_per_kwh,
        co2_kg=co2_kg,
    )
