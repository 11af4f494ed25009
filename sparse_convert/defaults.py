"""Numbers taken from the paper, named once. Section numbers refer to ``paper.md``."""

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
#: Window sizes evaluated for method 3, AEC (§3.1).
AEC_WINDOWS = (2, 4, 8, 16, 32, 64)

#: Sparsity of the paper's layers (§2.1.1): MLP linear 99 %, VGG-16 convolutions 50 %, ViT-B linear 70 %.
PAPER_SPARSITY = {"mlp": 0.99, "vgg16": 0.5, "vit_b16": 0.7}
