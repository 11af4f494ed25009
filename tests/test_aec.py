"""AEC: exponential thresholds, at most two spikes, stepped network = closed-form network."""

import math
from dataclasses import asdict

import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import evaluate_over_time
from sparse_convert.methods import BiasOnce, TimeFold, get_method
from sparse_convert.methods.aec import CodedInput
from sparse_convert.neurons import AECActivation, AECEncoder, AECNode, aec_code
from sparse_convert.neurons.aec import INITS
from sparse_convert.topology import random_masks

INIT = INITS["cifar10"]  # θ=2, t_d=−0.9, k=0.9, θ₂=1, t_d₂=−0.8, k₂=1


def thr1(t):
    return 2.0 * math.exp(-0.9 - 0.9 * t)   # 0.8131, 0.3306, 0.1344, 0.0546, ...


def thr2(t):
    return 1.0 * math.exp(-0.8 - 1.0 * t)   # 0.4493, 0.1653, 0.0608, 0.0224, ...


def params64():
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in asdict(INIT).items()}


@pytest.mark.parametrize("a,expected", [
    (0.5, (1, thr1(1), 2, thr2(2))),     # 0.5 ≥ thr1(1); residual 0.1694 ≥ thr2(2)
    (1.0, (0, thr1(0), 1, thr2(1))),     # saturates at τ=0; residual 0.1869 ≥ thr2(1)
    (0.055, (3, thr1(3), 4, 0.0)),       # primary at the window's last step: no room for a second
    (0.01, (4, 0.0, 4, 0.0)),            # below every threshold of the window: silent
    (-0.5, (4, 0.0, 4, 0.0)),
])
def test_hand_worked_exponential_thresholds(a, expected):
    t1, u1, t2, u2 = aec_code(torch.tensor([a], dtype=torch.float64), params64(), window=4)
    got = (int(t1), float(u1), int(t2), float(u2))
    assert got[0] == expected[0] and got[2] == expected[2]
    assert got[1] == pytest.approx(expected[1], rel=1e-12) and got[3] == pytest.approx(expected[3], rel=1e-12)


def step_node(a: torch.Tensor, window: int, depth: int) -> torch.Tensor:
    """Run a node of ``depth`` on the value ``a`` delivered during its decoding windows."""
    node = AECNode(params64(), window, depth).double()
    steps = (depth + 1) * window + 3
    x = torch.zeros(steps, *a.shape, dtype=torch.float64)
    x[depth * window - 1] = a  # arrives at the last decoding step
    with torch.no_grad():
        return node(x)


@pytest.mark.parametrize("window,depth", [(1, 1), (2, 1), (5, 2), (16, 3)])
def test_stepped_node_equals_closed_form_code(window, depth):
    g = torch.Generator().manual_seed(window * 10 + depth)
    a = (torch.rand(3, 50, generator=g, dtype=torch.float64) * 1.6 - 0.3)
    out = step_node(a, window, depth)
    t1, u1, t2, u2 = aec_code(a, params64(), window)
    start = depth * window
    expected = torch.zeros_like(out)
    for t, u in ((t1, u1), (t2, u2)):
        fired = u > 0
        idx = (start + t.long()).clamp(max=out.shape[0] - 1)
        expected.scatter_add_(0, idx.unsqueeze(0), torch.where(fired, u, 0).unsqueeze(0))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-15)


def test_at_most_two_spikes_per_neuron_and_only_in_its_window():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 200, generator=g, dtype=torch.float64) * 2
    out = step_node(a, window=8, depth=2)
    spikes = (out != 0).sum(0)
    assert spikes.max() <= 2 and (spikes == 2).any() and (spikes == 1).any()
    assert (out[:16] == 0).all() and (out[24:] == 0).all()


def test_encoder_sends_the_sign_and_the_code_of_each_pixel_in_window_zero():
    enc = AECEncoder(INIT, 4).double()
    x = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    seq = enc.encode(x, 0, 6)
    torch.testing.assert_close(seq.sum(0), enc.quantize(x))
    assert seq[1, 0, 0].item() == pytest.approx(thr1(1)) and seq[2, 0, 0].item() == pytest.approx(thr2(2))
    assert seq[0, 0, 1].item() == pytest.approx(-thr1(0)) and (seq[:, 0, 2] == 0).all()
    torch.testing.assert_close(torch.cat([enc.encode(x, 0, 3), enc.encode(x, 3, 3)]), seq)


def test_bias_once_adds_the_bias_exactly_once_across_chunks():
    fold = TimeFold(BiasOnce(torch.tensor([1.0, -2.0])))
    fold.steps = 3
    total = fold(torch.zeros(3 * 2, 2)).sum(0) + fold(torch.zeros(3 * 2, 2)).sum(0)
    torch.testing.assert_close(total, torch.tensor([2.0, -4.0]))  # batch of 2, each once
    functional.reset_net(fold)
    assert fold.node.step == 0


def coded_network(window: int, conv: bool) -> CodedInput:
    torch.manual_seed(0)
    if conv:
        body = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), AECActivation(INIT, window),
                             nn.AvgPool2d(2), nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6),
                             AECActivation(INIT, window), nn.Flatten(), nn.Linear(6 * 4 * 4, 5))
        shape = (2, 8, 8)
    else:
        body = nn.Sequential(nn.Flatten(), nn.Linear(12, 20), AECActivation(INIT, window),
                             nn.Linear(20, 20), AECActivation(INIT, window), nn.Linear(20, 4))
        shape = (12,)
    random_masks(body, 0.7, generator=torch.Generator().manual_seed(1))
    coded = CodedInput(AECEncoder(INIT, window), body, shape).double()
    if conv:  # non-trivial BatchNorm statistics, then eval
        coded.train()
        with torch.no_grad():
            coded(torch.randn(16, *shape, dtype=torch.float64))
    return coded.eval()


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv-bn"])
@pytest.mark.parametrize("window", [3, 8])
def test_stepped_network_equals_the_closed_form_network(conv, window):
    coded = coded_network(window, conv)
    x = torch.randn(10, *coded.in_shape, dtype=torch.float64)
    snn = get_method("aec")().convert(coded, window=window)
    assert snn.latency == 3 * window
    assert not any(isinstance(m, nn.BatchNorm2d) for m in snn.modules())
    with torch.no_grad():
        expected = coded(x)
        functional.reset_net(snn)
        got = snn(snn.encoder.encode(x, 0, snn.latency)).sum(0)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_every_layer_of_an_aec_network_does_acs_and_fires_at_most_twice():
    coded = coded_network(4, conv=False)
    snn = get_method("aec")().convert(coded, window=4).float()
    data = TensorDataset(torch.randn(20, 12), torch.zeros(20, dtype=torch.long))
    curves = evaluate_over_time(snn, data, snn.latency, progress=False)
    assert set(curves.roles.values()) == {"ac"} and curves.mac[-1] == 0
    # MASFR over the whole simulation: at most 2 spikes per neuron in latency steps
    assert curves.masfr[-1] <= 2 / snn.latency


def test_default_windows_are_powers_of_two_up_to_t_max():
    method = get_method("aec")()
    assert method.windows(64) == [2, 4, 8, 16, 32, 64]
    assert method.windows(10) == [2, 4, 8]
    assert method.windows(1) == [1]
    assert get_method("aec")(windows=[3, 5, 100]).windows(64) == [3, 5]
    with pytest.raises(ValueError, match="windows"):
        get_method("aec")(windows=[0])
