"""Synaptic events equal a brute-force count over individual synapses; MAC/AC roles follow the data."""

import itertools

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from sparse_convert.energy import (
    SpikeCountMonitor,
    SynapticEventMonitor,
    count_events,
    layer_fanout,
    trace_synapse_roles,
)
from sparse_convert.topology import random_masks


def brute_linear(x: torch.Tensor, w: torch.Tensor) -> int:
    """Σ over samples b, inputs j, outputs i of [x_bj ≠ 0][w_ij ≠ 0], one synapse at a time."""
    count = 0
    for b in range(x.shape[0]):
        for j in range(x.shape[1]):
            if x[b, j] == 0:
                continue
            for i in range(w.shape[0]):
                if w[i, j] != 0:
                    count += 1
    return count


def _source_index(i: int, size: int, mode: str) -> int | None:
    if 0 <= i < size:
        return i
    if mode == "zeros":
        return None
    if mode == "circular":
        return i % size
    if mode == "reflect":
        return -i if i < 0 else 2 * (size - 1) - i
    raise ValueError(mode)


def brute_conv(x: torch.Tensor, conv: nn.Conv2d) -> int:
    """Every (output position, kernel tap) whose input pixel and weight are both nonzero."""
    w = conv.weight
    n, c_in, h, wd = x.shape
    c_out, c_per_group, kh, kw = w.shape
    sh, sw = conv.stride
    ph, pw = conv.padding
    dh, dw = conv.dilation
    groups = conv.groups
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out_per_group = c_out // groups
    count = 0
    for b, oc, oy, ox in itertools.product(range(n), range(c_out), range(h_out), range(w_out)):
        g = oc // out_per_group
        for ic, ky, kx in itertools.product(range(c_per_group), range(kh), range(kw)):
            if w[oc, ic, ky, kx] == 0:
                continue
            iy = _source_index(oy * sh - ph + ky * dh, h, conv.padding_mode)
            ix = _source_index(ox * sw - pw + kx * dw, wd, conv.padding_mode)
            if iy is None or ix is None:
                continue
            if x[b, g * c_per_group + ic, iy, ix] != 0:
                count += 1
    return count


def make_input(kind: str, shape, generator) -> torch.Tensor:
    if kind == "analog":
        x = torch.randn(shape, generator=generator)
        return x * (torch.rand(shape, generator=generator) > 0.3)  # analog with some exact zeros
    if kind == "binary":
        return (torch.rand(shape, generator=generator) > 0.6).float()
    if kind == "signed":
        return torch.randint(-1, 2, shape, generator=generator).float()
    if kind == "scaled":  # spikes that carry a threshold value, as CS-QCFS and SNM nodes emit
        return (torch.rand(shape, generator=generator) > 0.6).float() * 0.37
    raise ValueError(kind)


INPUT_KINDS = ["analog", "binary", "signed", "scaled"]


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("sparsity", [0.0, 0.6, 0.95])
def test_linear_events_equal_brute_force(kind, sparsity):
    g = torch.Generator().manual_seed(hash((kind, sparsity)) % 1000)
    lin = nn.Linear(13, 9)
    model = nn.Sequential(lin, nn.Linear(9, 2))
    if sparsity:
        random_masks(model, sparsity, generator=g)
    x = make_input(kind, (5, 13), g)
    events = count_events(x, layer_fanout(lin, (13,)), steps=1)
    assert events.dtype == torch.float64
    assert int(events.item()) == brute_linear(x, lin.weight)


CONV_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=2, out_channels=4, kernel_size=3, stride=2, padding=1),
    dict(in_channels=2, out_channels=3, kernel_size=(2, 3), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    dict(in_channels=4, out_channels=6, kernel_size=3, padding=1, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4),  # depthwise
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=1, padding_mode="circular"),
    dict(in_channels=2, out_channels=3, kernel_size=3, padding=2, dilation=2, padding_mode="reflect"),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_conv2d_events_equal_brute_force(case, kind):
    g = torch.Generator().manual_seed(len(str(case)) * 7 + len(kind))
    torch.manual_seed(0)
    conv = nn.Conv2d(**case)
    random_masks(nn.Sequential(conv, nn.Linear(1, 1)), 0.5, generator=g)
    x = make_input(kind, (2, case["in_channels"], 7, 6), g)
    fanout = layer_fanout(conv, tuple(x.shape[1:]))
    assert int(count_events(x, fanout, steps=1).item()) == brute_conv(x, conv)


def test_events_split_by_time_step_in_both_layouts():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(6, 4)
    random_masks(nn.Sequential(lin, nn.Linear(4, 2)), 0.5, generator=g)
    x = make_input("binary", (3, 5, 6), g)  # [T, B, in]
    fanout = layer_fanout(lin, (6,))
    expected = [brute_linear(x[t], lin.weight) for t in range(3)]
    assert count_events(x, fanout, steps=3).tolist() == expected
    assert count_events(x.flatten(0, 1), fanout, steps=3).tolist() == expected


def test_large_counts_stay_exact_beyond_float32():
    """A per-sample total above 2**24 switches the product to float64."""
    lin = nn.Linear(5000, 4000, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    x = torch.ones(2, 5000)
    x[1, :1] = 0
    events = count_events(x, layer_fanout(lin, (5000,)), steps=1)
    assert int(events.item()) == 5000 * 4000 + 4999 * 4000


def spiking_net():
    torch.manual_seed(0)
    return nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"),
        neuron.IFNode(step_mode="m"),
        layer.AvgPool2d(2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(4 * 2 * 2, 5, step_mode="m"),
        neuron.IFNode(step_mode="m"),
        layer.Linear(5, 3, step_mode="m"),
    )


def test_roles_first_layer_mac_then_ac_through_pooling_and_flatten():
    net = spiking_net()
    x = torch.rand(2, 1, 2, 4, 4)
    roles = trace_synapse_roles(net, lambda: net(x))
    assert roles == {"0": "mac", "4": "ac", "6": "ac"}
    functional.reset_net(net)
    roles = trace_synapse_roles(net, lambda: net(x), input_spikes=x)
    assert roles["0"] == "ac"


def test_roles_of_a_layer_fed_by_a_non_spiking_layer_are_mac():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), neuron.IFNode(), nn.Linear(4, 2))
    roles = trace_synapse_roles(net, lambda: net(torch.rand(3, 4)))
    assert roles == {"0": "mac", "1": "mac", "3": "ac"}


def test_monitors_count_per_step_with_a_plain_spikingjelly_network():
    net = spiking_net()
    random_masks(net, 0.5, generator=torch.Generator().manual_seed(0))
    x_seq = torch.rand(4, 3, 2, 4, 4) * 3
    events, spikes = SynapticEventMonitor(net), SpikeCountMonitor(net)
    events.steps = spikes.steps = 4
    with torch.no_grad():
        net(x_seq)
    events.close()
    spikes.close()
    functional.reset_net(net)
    # recompute each layer's input with hooks-free forward passes, one step at a time
    recorded = {}

    def keep(name):
        def hook(module, args, out):
            recorded[name] = (args[0], out)
        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in net.named_modules() if n]
    with torch.no_grad():
        net(x_seq)
    for h in hooks:
        h.remove()
    per_layer = events.per_layer()
    assert all(len(v) == 4 for v in per_layer.values())
    for name in ("0", "4", "6"):
        inp = recorded[name][0]
        weight = net.get_submodule(name).weight
        for t in range(4):
            if name == "0":
                exact = brute_conv(inp[t], net.get_submodule(name))
            else:
                exact = brute_linear(inp[t].reshape(3, -1), weight)
            assert per_layer[name][t].item() == exact
    per_node = spikes.per_layer()
    for name in ("1", "5"):
        out = recorded[name][1]
        assert per_node[name].tolist() == [(out[t] != 0).sum().item() for t in range(4)]
