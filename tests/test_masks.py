"""Masks: attached as buffers to plain layers, exact zeros under any optimizer, saved and fused."""

import copy

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sparse_convert.methods.transforms import fold_batchnorm
from sparse_convert.topology import (
    attach_mask,
    attach_masks,
    density,
    get_mask,
    masked_layers,
    masks_from_state_dict,
    output_layer_name,
    random_masks,
    swi_masked_,
)


def small_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 5))


def small_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 3 * 3, 4))


def test_mask_is_a_buffer_on_an_unchanged_layer():
    model = small_mlp()
    random_masks(model, 0.8, generator=torch.Generator().manual_seed(1))
    layer = model[1]
    assert type(layer) is nn.Linear
    assert "1.weight_mask" in model.state_dict()
    assert get_mask(layer).dtype == torch.bool
    assert (layer.weight[~get_mask(layer)] == 0).all()


def test_random_masks_have_exact_counts_and_keep_output_dense():
    model = small_mlp()
    masks = random_masks(model, 0.9, generator=torch.Generator().manual_seed(0))
    assert output_layer_name(model) == "5"
    assert set(masks) == {"1", "3"}
    assert int(masks["1"].sum()) == round(0.1 * 20 * 30)
    d = density(model)
    assert d.layers["5"] == 1.0
    assert d.links == round(0.1 * 600) + round(0.1 * 900) + 150
    assert d.network == pytest.approx(d.links / (600 + 900 + 150))


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5])
def test_random_masks_reject_sparsity_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="sparsity"):
        random_masks(small_mlp(), bad)


def test_attach_mask_rejects_wrong_shape_and_values():
    layer = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*\(3, 4\)"):
        attach_mask(layer, torch.ones(4, 3))
    with pytest.raises(ValueError, match="0 or 1"):
        attach_mask(layer, torch.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        attach_mask(layer, torch.full((3, 4), float("nan")))
    with pytest.raises(TypeError, match="nn.Conv1d or nn.Conv2d"):
        attach_mask(nn.ReLU(), torch.ones(1))


def _train(model, optimizer, steps=50):
    x = torch.randn(16, 20)
    y = torch.randint(0, 5, (16,))
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-3),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
    lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
    lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5, weight_decay=0.1),
], ids=["sgd-momentum-wd", "adamw", "adam-l2", "rmsprop"])
def test_masked_weights_and_optimizer_state_stay_exactly_zero(make_opt):
    model = small_mlp()
    random_masks(model, 0.7, generator=torch.Generator().manual_seed(0))
    before = {n: m.weight.detach().clone() for n, m in masked_layers(model).items()}
    opt = make_opt(model.parameters())
    _train(model, opt)
    for name, layer in masked_layers(model).items():
        mask = get_mask(layer)
        assert torch.equal(layer.weight[~mask], torch.zeros(int((~mask).sum())))
        assert not torch.equal(layer.weight[mask], before[name][mask])  # the others did train
        for value in opt.state[layer.weight].values():
            if torch.is_tensor(value) and value.shape == mask.shape:
                assert (value[~mask] == 0).all()


def test_deepcopy_of_a_masked_model_stays_masked_in_training():
    model = small_mlp()
    random_masks(model, 0.7, generator=torch.Generator().manual_seed(0))
    twin = copy.deepcopy(model)
    _train(twin, torch.optim.AdamW(twin.parameters(), lr=0.01, weight_decay=0.1))
    for layer in masked_layers(twin).values():
        assert (layer.weight[~get_mask(layer)] == 0).all()


def test_loading_dense_weights_into_a_masked_model_reapplies_the_mask():
    model = small_mlp()
    random_masks(model, 0.5, generator=torch.Generator().manual_seed(0))
    dense = small_mlp().state_dict()
    dense.update({k: v for k, v in model.state_dict().items() if k.endswith("weight_mask")})
    model.load_state_dict(dense)
    for layer in masked_layers(model).values():
        assert (layer.weight[~get_mask(layer)] == 0).all()


def test_masks_round_trip_through_safetensors(tmp_path):
    model = small_mlp()
    random_masks(model, 0.9, generator=torch.Generator().manual_seed(3))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"))
    state = load_file(str(tmp_path / "m.safetensors"))
    fresh = small_mlp()
    attach_masks(fresh, masks_from_state_dict(state))
    fresh.load_state_dict(state)
    for name, layer in masked_layers(model).items():
        assert torch.equal(get_mask(layer), get_mask(fresh.get_submodule(name)))
        assert torch.equal(layer.weight, fresh.get_submodule(name).weight)


def test_masks_survive_conv_bn_fusion():
    model = small_cnn()
    random_masks(model, 0.5, generator=torch.Generator().manual_seed(0))
    model.train()
    for _ in range(3):
        model(torch.randn(8, 3, 8, 8))  # non-trivial BN statistics
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    expected = model(x)
    fused = fold_batchnorm(copy.deepcopy(model))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-5)
    for name, layer in masked_layers(model).items():
        fused_layer = fused.get_submodule(name)
        assert torch.equal(get_mask(fused_layer), get_mask(layer))
        assert (fused_layer.weight[~get_mask(fused_layer)] == 0).all()


def test_swi_scales_by_density_and_keeps_zeros():
    torch.manual_seed(0)
    layer = nn.Linear(1000, 400)
    model = nn.Sequential(layer, nn.Linear(400, 2))
    random_masks(model, 0.9, generator=torch.Generator().manual_seed(0))
    swi_masked_(model, torch.Generator().manual_seed(0))
    kept = layer.weight[get_mask(layer)]
    expected_std = (2.0 / (0.1 * 1000)) ** 0.5
    assert kept.std().item() == pytest.approx(expected_std, rel=0.05)
    assert (layer.weight[~get_mask(layer)] == 0).all()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-3),
    lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
], ids=["sgd-momentum-wd", "adamw"])
def test_mask_attached_mid_training_holds_despite_stale_optimizer_state(make_opt):
    """Pruning during training: momentum / Adam moments of the pruned weights are nonzero."""
    model = small_mlp()
    opt = make_opt(model.parameters())
    _train(model, opt, steps=10)  # dense: every entry of the optimizer state is nonzero
    random_masks(model, 0.7, generator=torch.Generator().manual_seed(0))
    _train(model, opt, steps=10)
    for layer in masked_layers(model).values():
        assert (layer.weight[~get_mask(layer)] == 0).all()
