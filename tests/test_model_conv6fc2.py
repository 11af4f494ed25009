"""conv6fc2: the SD-SNN / DPAP CIFAR network (6 convolutions, 2 FC layers), built, run on digits, converted."""

import pytest
import torch
from torch import nn

from sparse_convert.experiments import RunConfig, run
from sparse_convert.models import available_models, build_model
from sparse_convert.training import FitConfig


def _layers(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, kind)]


def test_conv6fc2_is_registered():
    assert "conv6fc2" in available_models()


def test_cifar_network_has_six_bn_convolutions_two_poolings_and_two_linears():
    model = build_model("conv6fc2", 10, (3, 32, 32))
    convs = _layers(model, nn.Conv2d)
    assert [c.out_channels for c in convs] == [128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert len(_layers(model, nn.BatchNorm2d)) == 6
    assert len(_layers(model, nn.AvgPool2d)) == 2 and not _layers(model, nn.MaxPool2d)
    assert len(_layers(model, nn.ReLU)) == 7  # six convolutions and the hidden FC layer
    assert [(fc.in_features, fc.out_features) for fc in _layers(model, nn.Linear)] == [(512 * 8 * 8, 512), (512, 10)]
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_width_scales_every_hidden_layer():
    model = build_model("conv6fc2", 100, (3, 32, 32), width=0.125)
    assert [c.out_channels for c in _layers(model, nn.Conv2d)] == [16, 16, 32, 32, 64, 64]
    assert [(fc.in_features, fc.out_features) for fc in _layers(model, nn.Linear)] == [(64 * 8 * 8, 64), (64, 100)]
    assert len(_layers(model, nn.Conv2d)) == 6 and len(_layers(model, nn.Linear)) == 2
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 100)


def test_grayscale_input_and_maxpool_option():
    model = build_model("conv6fc2", 10, (1, 32, 32), width=0.125, pool="max")
    assert _layers(model, nn.Conv2d)[0].in_channels == 1
    assert len(_layers(model, nn.MaxPool2d)) == 2 and not _layers(model, nn.AvgPool2d)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("shape, options, message", [
    ((1, 30, 30), {}, "multiples of 4, got 30x30"),
    ((3, 32, 32), {"width": 0}, "width multiplier must be > 0, got 0"),
    ((3, 32, 32), {"pool": "sum"}, "pool must be 'avg' or 'max', got 'sum'"),
])
def test_bad_shapes_and_options_are_refused(shape, options, message):
    with pytest.raises(ValueError, match=message):
        build_model("conv6fc2", 10, shape, **options)


def test_digits_are_resized_to_32_pixels_unless_a_size_is_given():
    assert RunConfig(model="conv6fc2", dataset="digits").resolved_image_size() == 32
    assert RunConfig(model="conv6fc2", dataset="digits", image_size=16).resolved_image_size() == 16


@pytest.fixture(scope="module")
def qcfs_runs():
    """Tiny CS-QCFS runs of a 1/8-width conv6fc2 on digits (32 x 32), dense and 90 % sparse, t_max 4."""
    runs = {}
    for sparsity in (0.0, 0.9):
        cfg = RunConfig(model="conv6fc2", model_options={"width": 0.125}, dataset="digits", method="qcfs",
                        sparsity=sparsity, t_max=4, seed=0, train=FitConfig(epochs=2),
                        method_options={"layer_epochs": 1, "channel_epochs": 1})
        runs[sparsity] = run(cfg, progress=False)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_qcfs_converts_conv6fc2_trained_on_digits(qcfs_runs, sparsity):
    result = qcfs_runs[sparsity]
    assert result["config"]["model"] == "conv6fc2" and result["ann_accuracy"] > 0.5
    assert abs(result["density"]["network"] - (1 - sparsity)) < 0.02
    assert len(result["density"]["layers"]) == 8  # 6 convolutions + 2 linears carry weights
    accuracy = result["per_step"]["accuracy"]
    assert len(accuracy) == 4 and accuracy[-1] > 0.5


@pytest.mark.slow
def test_sparse_snn_spends_less_energy_than_dense(qcfs_runs):
    assert qcfs_runs[0.9]["per_step"]["energy_uj"][-1] < qcfs_runs[0.0]["per_step"]["energy_uj"][-1]
