"""VGG-16 with BatchNorm and a single fully connected output layer (paper §2.4, after Yu et al. 2021).

It is torchvision's ``VGG`` built from its configuration ``"D"`` by ``make_layers``, with
``avgpool`` made an identity and the three-layer classifier replaced by one ``Linear``.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from .registry import image_shape, register_model


def _scaled_cfg(width: float) -> list[int | str]:
    if width <= 0:
        raise ValueError(f"width multiplier must be > 0, got {width}")
    return [v if v == "M" else max(1, round(v * width)) for v in cfgs["D"]]


@register_model("vgg16")
def vgg16(
    num_classes: int,
    in_shape: tuple[int, ...],
    width: float = 1.0,
    pool: str = "avg",
) -> VGG:
    """VGG-16-BN, ``width`` x the usual channel counts; ``pool`` is ``"avg"`` (convertible) or ``"max"``.

    Spiking networks cannot max-pool spikes faithfully, so the conversion methods need
    average pooling; the default trains the ANN with it from the start.
    """
    if pool not in ("avg", "max"):
        raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
    channels, height, width_px = image_shape("vgg16", in_shape, 32)
    features = make_layers(_scaled_cfg(width), batch_norm=True)
    for i, layer in enumerate(features):
        if isinstance(layer, nn.ReLU):
            features[i] = nn.ReLU()  # not in place: hooks and conversion read activations
        elif isinstance(layer, nn.MaxPool2d) and pool == "avg":
            features[i] = nn.AvgPool2d(kernel_size=2, stride=2)
    first = features[0]
    if channels != first.in_channels:
        features[0] = nn.Conv2d(channels, first.out_channels, kernel_size=3, padding=1)
        nn.init.kaiming_normal_(features[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(features[0].bias)
    model = VGG(features, num_classes=num_classes, init_weights=True)
    last_channels = [v for v in _scaled_cfg(width) if v != "M"][-1]
    model.avgpool = nn.Identity()
    model.classifier = nn.Linear(last_channels * (height // 32) * (width_px // 32), num_classes)
    nn.init.normal_(model.classifier.weight, 0, 0.01)
    nn.init.zeros_(model.classifier.bias)
    return model
