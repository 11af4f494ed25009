"""Theoretical energy from operation counts: ``E = E_MAC · MACs + E_AC · ACs`` (paper §2.2)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..defaults import E_AC_PJ, E_MAC_PJ

PJ_PER_UJ = 1e6


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation in pJ; the defaults are the paper's 45 nm figures (4.6 pJ MAC, 0.9 pJ AC)."""

    e_mac_pj: float = E_MAC_PJ
    e_ac_pj: float = E_AC_PJ

    def __post_init__(self) -> None:
        for name in ("e_mac_pj", "e_ac_pj"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def energy_uj(self, mac: float, ac: float) -> float:
        """Energy in µJ of ``mac`` multiply-accumulates and ``ac`` accumulates."""
        return (self.e_mac_pj * mac + self.e_ac_pj * ac) / PJ_PER_UJ
