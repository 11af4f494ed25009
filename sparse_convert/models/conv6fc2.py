"""The 6-convolution, 2-FC CIFAR network of SD-SNN and DPAP, the STBP baselines of paper Appendix D (Table A3).

Sources:

- SD-SNN: Bing Han, Feifei Zhao, Yi Zeng, Wenxuan Pan, "Adaptive Sparse Structure Development with Pruning
  and Regeneration for Spiking Neural Networks", arXiv:2211.12219 (Information Sciences 689, 2025).
- DPAP: Bing Han, Feifei Zhao, Yi Zeng, Guobin Shen, "Developmental Plasticity-inspired Adaptive Pruning for
  Deep Spiking and Artificial Neural Networks", arXiv:2211.12714 (IEEE TPAMI, 2024).

Where the structure comes from: the copies of both papers we could read held only their titles and
abstracts, and the abstracts give no layer list, so it was not read from a table or section of either paper.
It is taken from the authors' implementations in BrainCog (github.com/BrainCog-X/Brain-Cog, whose READMEs
cite the two papers): ``my_cifar_model`` in the files ``snn_model.py`` (example Structural_Development, SD-SNN)
and ``mask_model.py`` (example Structural_Development, DPAP), which define the same network:

    [conv3x3(128) → BN → spike] x 2 → maxpool 2
    [conv3x3(256) → BN → spike] x 2 → maxpool 2
    [conv3x3(512) → BN → spike] x 2 → flatten (512 x 8 x 8) → FC 512 → spike → FC classes → spike

(``BaseConvModule``: 3x3 convolution, padding 1, no bias, then ``BatchNorm2d``; ``BaseLinearModule``: a biased
``Linear``; PLIF/LIF neurons, 8 time steps, direct input). That is 6 convolutions and 2 FC layers, as paper
Appendix D says.

Departures, all for ANN-to-SNN conversion:

- ``nn.ReLU`` where they have spiking neurons: the conversion methods replace ReLUs.
- No activation after the last FC layer (they spike there and average the spikes): it outputs logits.
- Average pooling by default: spikes cannot be max-pooled; ``pool="max"`` keeps their max pooling
  (the conversion methods then swap it for average pooling).
- ``width`` scales every hidden width (the six convolutions and the 512-unit FC layer) so the network can run
  small, e.g. on digits resized to 32 x 32.
"""

from __future__ import annotations

from torch import nn

from .registry import image_shape, register_model

#: Output channels of the six 3x3 convolutions, ``"M"`` a 2x2 pooling (BrainCog ``my_cifar_model``).
CONV6_CFG: tuple[int | str, ...] = (128, 128, "M", 256, 256, "M", 512, 512)
#: Width of the hidden FC layer.
FC_HIDDEN = 512
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class Conv6FC2(nn.Sequential):
    """``features`` (6 x conv3x3 → BN → ReLU, two 2x2 poolings) then ``classifier`` (Flatten → FC → ReLU → FC)."""

    def __init__(self, num_classes: int, in_shape: tuple[int, ...], width: float = 1.0, pool: str = "avg"):
        if not width > 0:
            raise ValueError(f"width multiplier must be > 0, got {width}")
        if pool not in _POOLS:
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        channels, height, width_px = image_shape("conv6fc2", in_shape, 4)
        layers: list[nn.Module] = []
        c_in = channels
        for v in CONV6_CFG:
            if v == "M":
                layers.append(_POOLS[pool](kernel_size=2, stride=2))
                continue
            c_out = _scaled(v, width)
            layers += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU()]  # not in place: hooks and conversion read activations
            c_in = c_out
        hidden = _scaled(FC_HIDDEN, width)
        classifier = nn.Sequential(nn.Flatten(), nn.Linear(c_in * (height // 4) * (width_px // 4), hidden),
                                   nn.ReLU(), nn.Linear(hidden, num_classes))
        super().__init__()
        self.features = nn.Sequential(*layers)
        self.classifier = classifier


@register_model("conv6fc2")
def conv6fc2(num_classes: int, in_shape: tuple[int, ...], width: float = 1.0, pool: str = "avg") -> Conv6FC2:
    """SD-SNN / DPAP CIFAR network (128-128-P-256-256-P-512-512, FC 512), ``width`` x its widths."""
    return Conv6FC2(num_classes, in_shape, width=width, pool=pool)
