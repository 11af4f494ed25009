"""Magnitude pruning (one-shot, iterative) and DepGraph structural pruning."""

import pytest
import torch
from torch import nn

from sparse_convert.models import build_model
from sparse_convert.topology import build_topology, density, get_mask, magnitude_prune, masked_layers


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 5))


def train(model, opt, sched, steps):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x, y = torch.randn(16, 20, generator=g), torch.randint(0, 5, (16,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()


def test_magnitude_prune_keeps_the_largest_weights_of_each_layer():
    model = mlp()
    weights = {n: model[int(n)].weight.detach().clone() for n in ("1", "3")}
    masks = magnitude_prune(model, 0.9)
    assert set(masks) == {"1", "3"}  # the output layer stays dense
    for name, mask in masks.items():
        w = weights[name].abs()
        assert int(mask.sum()) == round(0.1 * w.numel())
        assert w[mask].min() > w[~mask].max()
        assert torch.equal(model[int(name)].weight, weights[name] * mask)


def test_global_magnitude_prune_ranks_all_layers_together():
    model = mlp()
    with torch.no_grad():
        model[3].weight.mul_(100)  # layer 3 dominates the global ranking
    masks = magnitude_prune(model, 0.9, scope="global")
    assert sum(int(m.sum()) for m in masks.values()) == 60 + 90
    assert int(masks["3"].sum()) == 150  # all of them larger than any of layer 1
    assert int(masks["1"].sum()) == 0


def test_magnitude_prune_clears_optimizer_state_of_pruned_weights():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, build_topology("static", model, opt, 0.0), 3)
    masks = magnitude_prune(model, 0.5, optimizer=opt)
    for name, mask in masks.items():
        assert (opt.state[model[int(name)].weight]["momentum_buffer"][~mask] == 0).all()


def test_one_shot_scheduler_trains_dense_then_prunes_at_start():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = build_topology("magnitude", model, opt, 0.8, total_steps=20, start=0.5)
    train(model, opt, sched, 9)
    assert density(model).network == 1.0 and sched.history == []
    train(model, opt, sched, 1)
    assert density(model).layers == {"1": pytest.approx(0.2), "3": pytest.approx(0.2), "5": 1.0}
    assert [u["step"] for u in sched.history] == [10]
    train(model, opt, sched, 10)
    for layer in masked_layers(model).values():
        assert (layer.weight[~get_mask(layer)] == 0).all()


def test_iterative_scheduler_follows_the_cubic_schedule_and_prunes_at_construction_when_due():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_topology("magnitude", model, opt, 0.8, total_steps=40, start=0.0, end=0.5, rounds=3)
    assert [u["step"] for u in sched.history] == [0]
    train(model, opt, sched, 40)
    assert [u["step"] for u in sched.history] == [0, 10, 20]
    expected = [0.8 * (1 - (1 - k / 3) ** 3) for k in (1, 2, 3)]
    assert [u["sparsity"] for u in sched.history] == pytest.approx(expected)
    assert [u["layers"]["1"]["links"] for u in sched.history] == [round((1 - s) * 600) for s in expected]


def test_magnitude_rejects_bad_options():
    with pytest.raises(ValueError, match="need 0 <= start <= end <= 1, got start=0.9, end=0.75"):
        build_topology("magnitude", mlp(), None, 0.5, start=0.9)
    with pytest.raises(ValueError, match="scope must be one of"):
        build_topology("magnitude", mlp(), None, 0.5, scope="row")


# -- DepGraph (torch-pruning) ------------------------------------------------------------


def small_vgg() -> nn.Module:
    torch.manual_seed(0)
    return build_model("vgg16", 10, (3, 32, 32), width=1 / 16)


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_depgraph_prunes_whole_coupled_channels_to_the_network_wise_target():
    pytest.importorskip("torch_pruning")
    model = small_vgg()
    sched = build_topology("depgraph", model, None, 0.7, input_shape=[3, 32, 32], start=0.0)
    layers = convs(model)
    total = sum(m.weight.numel() for m in layers) + model.classifier.weight.numel()
    target = sum(round(0.3 * m.weight.numel()) for m in layers) + model.classifier.weight.numel()
    got = density(model).links
    assert got <= target and got > 0.9 * target
    assert 0.25 < got / total < 0.35
    for conv in layers:  # whole channels: a kernel survives iff its out- and in-channel both do
        mask = get_mask(conv)
        outs, ins = mask.flatten(1).any(1), mask.any(3).any(2).any(0)
        assert torch.equal(mask, (outs[:, None] & ins[None, :])[:, :, None, None].expand_as(mask))
    for conv, nxt in zip(layers, layers[1:]):  # coupled: a removed out-channel is removed as the next input
        outs = get_mask(conv).flatten(1).any(1)
        assert not outs.all()
        assert torch.equal(get_mask(nxt).any(3).any(2).any(0), outs)
    last_dead = ~get_mask(layers[-1]).flatten(1).any(1)
    assert torch.equal(get_mask(model.classifier).any(0), ~last_dead)  # 1x1 pixels: one column per channel
    assert sched.summary()["rule"] == "depgraph"


def test_depgraph_learns_the_input_shape_from_training():
    pytest.importorskip("torch_pruning")
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_topology("depgraph", model, opt, 0.8, total_steps=4, start=0.5)
    train(model, opt, sched, 4)
    assert sched.input_shape == (20,)
    d = density(model)
    assert d.links <= round(0.2 * 600) + round(0.2 * 900) + 150
    hidden = get_mask(model[1]).any(1)
    assert torch.equal(get_mask(model[3]).any(0), hidden)  # neuron pruning couples rows and next columns


def test_depgraph_at_construction_needs_an_input_shape():
    pytest.importorskip("torch_pruning")
    with pytest.raises(ValueError, match="depgraph needs input_shape"):
        build_topology("depgraph", mlp(), None, 0.5, start=0.0)
