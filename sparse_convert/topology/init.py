"""Weight initialisation for sparse layers.

SWI (sparse weight initialisation, from the Cannistraci-Hebb training code): Kaiming-normal
with the fan-in counted in existing links, ``std = sqrt(2 / (density · fan_in))``, so a
sparse layer's pre-activations have the variance a dense layer's would. Without it a 90 %
sparse ReLU network starts with signals ~3x too small per layer and trains poorly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .masks import apply_mask, get_mask, masked_layers


@torch.no_grad()
def swi_(layer: nn.Module, generator: torch.Generator | None = None) -> None:
    """Re-draw ``layer``'s weights with SWI (masked entries stay zero); bias becomes zero."""
    weight = layer.weight
    mask = get_mask(layer)
    fan_in = weight[0].numel()  # in_features, or in_channels/groups · kh · kw
    density = 1.0 if mask is None else float(mask.sum()) / mask.numel()
    std = math.sqrt(2.0 / max(density * fan_in, 1e-12))
    weight.copy_(torch.randn(weight.shape, generator=generator, dtype=weight.dtype) * std)
    if layer.bias is not None:
        layer.bias.zero_()
    apply_mask(layer)


def swi_masked_(model: nn.Module, generator: torch.Generator | None = None) -> list[str]:
    """Apply ``swi_`` to every masked layer of ``model``; returns their names."""
    layers = masked_layers(model)
    for layer in layers.values():
        swi_(layer, generator)
    return list(layers)
