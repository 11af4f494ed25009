"""Numbers taken from the paper, named once. Section numbers refer to the paper, *Investigating the Trade-off
Between Accuracy and Theoretical Energy in Sparse ANN-to-SNN Conversion*."""

from __future__ import annotations

#: Energy of one multiply-accumulate, pJ (§2.2, after Yao et al. 2023).
E_MAC_PJ = 4.6
#: Energy of one accumulate, pJ (§2.2).
E_AC_PJ = 0.9

#: Saturation: relative improvement between consecutive steps must stay at or below this (§2.3.2).
SATURATION_TOLERANCE = 0.01
#: Saturation: ... for this many consecutive steps (§2.3.2).
SATURATION_WINDOW = 10

#: Largest number of time steps evaluated for methods 1, 2, 4 (§3.1: ts = 1..64).
T_MAX = 64
