"""Multilayer perceptron: Flatten, then Linear + ReLU blocks, then a Linear classifier."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from torch import nn

from .registry import register_model

#: Hidden widths of the CHT papers' MLP, used for CIFAR-size inputs (3 x 3000).
CHT_HIDDEN = (3000, 3000, 3000)
#: Hidden widths for small inputs such as the 8x8 digits: trains in seconds on a CPU.
SMALL_HIDDEN = (256, 256, 256)
#: Hidden widths for 1-D signals (inputs shaped ``(C, L)``, such as MNIST-1D's 40 values): about a second per
#: epoch of MNIST-1D on one CPU core, and wide enough that 99 % sparsity leaves each neuron ~10 links.
SIGNAL_HIDDEN = (1000, 1000, 1000)


class MLP(nn.Sequential):
    """``Flatten → [Linear → ReLU] * len(hidden) → Linear``; ReLUs are where conversion methods act."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int):
        if (isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden
                or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1 for h in hidden)):
            raise ValueError(f"hidden must be a non-empty list of positive integer widths (e.g. hidden=[256,256]), "
                             f"got {hidden!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


@register_model("mlp")
def mlp(num_classes: int, in_shape: tuple[int, ...], hidden: Sequence[int] | None = None) -> MLP:
    """MLP; ``hidden`` defaults to 3 x 3000 for inputs of 1024 features or more, 3 x 1000 for smaller 1-D
    signals (``in_shape`` of two dims, ``(C, L)``), else 3 x 256."""
    in_features = math.prod(in_shape)
    if hidden is None:
        hidden = CHT_HIDDEN if in_features >= 1024 else SIGNAL_HIDDEN if len(in_shape) == 2 else SMALL_HIDDEN
    return MLP(in_features, hidden, num_classes)
