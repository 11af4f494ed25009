"""Theoretical energy from operation counts: ``E = E_MAC · MACs + E_AC · ACs`` (paper §2.2), and named presets.

A preset (``energy_model(name)``, ``ENERGY_MODELS``) carries where its figures come from
and what they price:

* ``45nm-fp32`` (default, the paper's): 4.6 pJ per 32-bit float MAC, 0.9 pJ per 32-bit
  float add (Horowitz, ISSCC 2014, 45 nm);
* ``45nm-fp16``, ``45nm-int8``: the same source's 16-bit float and 8-bit integer
  figures, read from SpikingJelly 2.0's energy profiler
  (``op_counter.simple_energy.SimpleEnergyCostConfig.fp16()`` / ``.int8()``) when it is
  importable, else the same numbers written here;
* neuromorphic chips, priced per synaptic operation (SOp): each AC, one spike reaching
  one synapse, costs the chip's published energy per SOp, taken from Table 3 of Tang et
  al., "SENECA: building a fully digital neuromorphic processor, design trade-offs and
  challenges", Front. Neurosci. 17:1187252 (2023), https://pmc.ncbi.nlm.nih.gov/articles/PMC10326429/,
  which quotes each chip's own paper (cited per preset below) and warns that an SOp's
  cost varies with the application: the figures are for high-level comparison. These
  chips take spikes, not analog values, so the first layer's MACs (the analog image) run
  off-chip and are priced at the 45 nm fp32 MAC (4.6 pJ).

Papers quote other figures for the same chips (measured on other workloads); all chip
figures here come from that one table, and a chip it gives no figure for is left out
(Loihi 2: "NA").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..defaults import E_AC_PJ, E_MAC_PJ

PJ_PER_UJ = 1e6

#: The cited source of the 45 nm CMOS figures.
HOROWITZ_2014 = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
                 "ISSCC 2014, 45 nm figures")
#: The table the neuromorphic chips' figures are read from.
SENECA_TABLE = ("Tang et al., 'SENECA: building a fully digital neuromorphic processor, design trade-offs "
                "and challenges', Front. Neurosci. 17:1187252 (2023), Table 3 (energy per SOp), "
                "https://pmc.ncbi.nlm.nih.gov/articles/PMC10326429/")
#: How the chips price the first layer's MACs.
OFF_CHIP_MAC = "MACs (the analog first layer) priced off-chip at the 45 nm fp32 MAC (4.6 pJ)"


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in pJ; the defaults are the paper's 45 nm figures (4.6 pJ MAC, 0.9 pJ AC).

    ``name``, ``source`` and ``prices`` describe a preset (``energy_model``); a model built
    from two numbers is ``custom``.
    """

    e_mac_pj: float = E_MAC_PJ
    e_ac_pj: float = E_AC_PJ
    name: str = "custom"
    source: str = ""
    prices: str = ""

    def __post_init__(self) -> None:
        for name in ("e_mac_pj", "e_ac_pj"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def energy_uj(self, mac: float, ac: float) -> float:
        """Energy in µJ of ``mac`` multiply-accumulates and ``ac`` accumulates."""
        return (self.e_mac_pj * mac + self.e_ac_pj * ac) / PJ_PER_UJ

    def to_dict(self) -> dict:
        """The ``energy_model`` block of ``result.json``."""
        return {"name": self.name, "e_mac_pj": self.e_mac_pj, "e_ac_pj": self.e_ac_pj,
                "source": self.source, "prices": self.prices}


def _horowitz_45nm() -> dict[str, tuple[float, float]]:
    """(MAC, AC) pJ of the 45 nm presets: SpikingJelly's profiler table where importable."""
    try:
        from spikingjelly.activation_based.op_counter.simple_energy import SimpleEnergyCostConfig
    except ImportError:  # the same figures (Horowitz 2014) as SpikingJelly 2.0 ships them
        return {"fp32": (4.6, 0.9), "fp16": (1.5, 0.4), "int8": (0.23, 0.03)}
    table = {}
    for precision in ("fp32", "fp16", "int8"):
        cost = getattr(SimpleEnergyCostConfig, precision)()
        table[precision] = (float(cost.e_mac_pj), float(cost.e_ac_pj))
    return table


def _presets() -> dict[str, EnergyModel]:
    cmos = _horowitz_45nm()
    presets = {
        "45nm-fp32": EnergyModel(E_MAC_PJ, E_AC_PJ, "45nm-fp32", HOROWITZ_2014 + " (the paper's, §2.2)",
                                 "MAC: 32-bit float multiply-add; AC: 32-bit float add"),
    }
    for precision, label in (("fp16", "16-bit float"), ("int8", "8-bit integer")):
        mac, ac = cmos[precision]
        presets[f"45nm-{precision}"] = EnergyModel(
            mac, ac, f"45nm-{precision}", HOROWITZ_2014 + ", as in SpikingJelly 2.0's SimpleEnergyCostConfig",
            f"MAC: {label} multiply-add; AC: {label} add")
    chips = (  # name, pJ per SOp, the chip's own paper as Tang et al. cite it
        ("loihi", 23.6, "Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', "
                        "IEEE Micro, 2018"),
        ("truenorth", 2.5, "Akopyan et al., 'TrueNorth: design and tool flow of a 65 mW 1 million neuron "
                           "programmable neurosynaptic chip', IEEE TCAD, 2015"),
        ("tianjic", 1.54, "Deng et al., 'Tianjic: a unified and scalable chip bridging spike-based and "
                          "continuous neural computation', IEEE JSSC, 2020"),
        ("spinnaker", 45.0, "Stromatias et al., 'Power analysis of large-scale, real-time neural networks "
                            "on SpiNNaker', IJCNN 2013"),
        ("spinnaker2", 10.0, "Höppner et al., 'The SpiNNaker 2 processing element architecture for hybrid "
                             "digital neuromorphic computing', 2021"),
    )
    for name, sop_pj, paper in chips:
        presets[name] = EnergyModel(E_MAC_PJ, sop_pj, name, f"{SENECA_TABLE}, quoting {paper}",
                                    f"AC: one synaptic operation on the chip ({sop_pj:g} pJ/SOp); {OFF_CHIP_MAC}")
    return presets


#: The named energy models, default first.
ENERGY_MODELS: dict[str, EnergyModel] = _presets()
DEFAULT_ENERGY_MODEL = "45nm-fp32"


def energy_model(name: str) -> EnergyModel:
    """The preset called ``name`` (see ``ENERGY_MODELS``); an unknown name is an error listing them."""
    try:
        return ENERGY_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown energy model {name!r}; choose one of {', '.join(ENERGY_MODELS)}") from None


def energy_by_model(mac: float, ac: float, names: list[str] | None = None) -> dict[str, float]:
    """Energy in µJ of ``mac`` MACs and ``ac`` ACs under each named preset (default: all)."""
    return {n: energy_model(n).energy_uj(mac, ac) for n in (names or ENERGY_MODELS)}


def reduction_by_model(reference: tuple[float, float], other: tuple[float, float],
                       names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``{preset: {reference_uj, energy_uj, reduction}}`` for (MACs, ACs) pairs; reduction = 1 − other / reference.

    A preset that prices MACs and ACs alike (one price per operation) gives the same
    reduction as counting operations; only the absolute µJ differ.
    """
    table = {}
    for n in names or ENERGY_MODELS:
        ref, got = energy_model(n).energy_uj(*reference), energy_model(n).energy_uj(*other)
        table[n] = {"reference_uj": ref, "energy_uj": got, "reduction": 1.0 - got / ref if ref else float("nan")}
    return table
