"""Model registry: the MLP and VGG-16 with one fully connected layer."""

import pytest
import torch
from torch import nn

from sparse_convert.models import available_models, build_model


def test_registry_lists_and_rejects_names():
    assert {"mlp", "vgg16"} <= set(available_models())
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        build_model("resnet", 10, (3, 32, 32))
    with pytest.raises(ValueError, match="bad options for model 'mlp'"):
        build_model("mlp", 10, (1, 8, 8), depth=3)


def test_mlp_defaults_small_for_digits_and_cht_size_for_cifar():
    small = build_model("mlp", 10, (1, 8, 8))
    assert [m.out_features for m in small if isinstance(m, nn.Linear)] == [256, 256, 256, 10]
    cifar = build_model("mlp", 10, (3, 32, 32))
    assert [m.out_features for m in cifar if isinstance(m, nn.Linear)] == [3000, 3000, 3000, 10]
    assert sum(isinstance(m, nn.ReLU) for m in cifar) == 3
    custom = build_model("mlp", 5, (1, 8, 8), hidden=[32, 16])
    assert custom(torch.rand(3, 1, 8, 8)).shape == (3, 5)


def test_vgg16_is_torchvisions_features_with_one_linear_output():
    model = build_model("vgg16", 100, (3, 32, 32))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and [c.out_channels for c in convs][-1] == 512
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == 13
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.features) == 5
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 512 and linears[0].out_features == 100


def test_vgg16_width_multiplier_grayscale_input_and_maxpool_option():
    model = build_model("vgg16", 10, (1, 32, 32), width=0.25, pool="max")
    assert model.features[0].in_channels == 1 and model.features[0].out_channels == 16
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 5
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("vgg16", 10, (1, 8, 8))
