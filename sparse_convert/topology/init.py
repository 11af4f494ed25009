"""Initialisation of sparse layers: their weights (SWI) and their topology (CSTI).

SWI (sparse weight initialisation, from the Cannistraci-Hebb training code): Kaiming-normal
with the fan-in counted in existing links, ``std = sqrt(2 / (density · fan_in))``, so a
sparse layer's pre-activations have the variance a dense layer's would. Without it a 90 %
sparse ReLU network starts with signals ~3x too small per layer and trains poorly.

CSTI (correlated sparse topological initialisation, same code, ``docs/topology.md`` §5): link the
pairs of input features whose Pearson correlation over the training inputs is largest.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .masks import apply_mask, get_mask, masked_layers
from .selection import top_k


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


def input_correlation(inputs: Tensor) -> Tensor:
    """``[F, F]`` |Pearson correlation| between the features of ``inputs`` ``[N, ...]``; 0 on the diagonal and
    for constant features."""
    x = inputs.reshape(len(inputs), -1).to(torch.float64)
    if len(x) < 2:
        raise ValueError(f"CSTI needs at least 2 input samples, got {len(x)}")
    corr = torch.corrcoef(x.T).abs().nan_to_num_(0.0)
    corr.fill_diagonal_(0.0)
    return corr


def csti_mask(correlation: Tensor, shape: tuple[int, int], links: int, generator: torch.Generator) -> Tensor:
    """A ``[out, in]`` mask of exactly ``links`` links where the correlation, tiled to ``shape``, is largest.

    The reference code tiles the ``[F, F]`` correlation over every layer's ``[out, in]``
    (``[[C, C], [C, C]]`` for twice-as-wide layers) and applies it to all sparse layers; ties
    (which tiling creates) are broken at random.
    """
    out, inp = shape
    features = correlation.shape[0]
    tiled = correlation.repeat(math.ceil(out / features), math.ceil(inp / features))[:out, :inp]
    return top_k(tiled, torch.ones(shape, dtype=torch.bool), links, generator)
