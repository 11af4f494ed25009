"""AEC: exponential thresholds, two spikes (one step may carry both), stepped network = closed-form network
= the reference's closed form, and energy counted spike by spike."""

import math
from collections import OrderedDict
from dataclasses import asdict

import pytest
import torch
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import SpikeCountMonitor, SynapticEventMonitor, evaluate_over_time
from sparse_convert.methods import BiasOnce, TimeFold, get_method
from sparse_convert.methods.aec import CodedInput
from sparse_convert.neurons import AECActivation, AECEncoder, AECNode, aec_code
from sparse_convert.neurons.aec import INITS, AECInit
from sparse_convert.topology import random_masks

INIT = INITS["cifar10"]  # θ=2, t_d=−0.9, k=0.9, θ₂=1, t_d₂=−0.8, k₂=1


def thr1(t):
    return 2.0 * math.exp(-0.9 - 0.9 * t)   # 0.8131, 0.3306, 0.1344, 0.0546, ...


def thr2(t):
    return 1.0 * math.exp(-0.8 - 1.0 * t)   # 0.4493, 0.1653, 0.0608, 0.0224, ...


def params64(init: AECInit = INIT) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in asdict(init).items()}


# -- the reference's closed form, transcribed from its equations (float64) ----------------------------------

def reference_code(a: torch.Tensor, init: AECInit, sim_length: int) -> tuple[torch.Tensor, ...]:
    """``En_Decoding2`` of the AEC reference: (decoded, t, t2, u, u2) for a batch ``a``, spike times 0..sim_length.

    t  = relu(ceil((−log(relu(a/θ) + 1e-20) + t_d) / k)); t > T → T + 5 (no spike)
    u  = θ·exp(−k·t + t_d), entries equal to the batch minimum set to 0
    t2 = relu(ceil((−log(relu((a − u)/θ₂) + 1e-20) + t_d₂) / k₂)); t2 > T → T; t2 = max(t2, t)
    u2 = θ₂·exp(−k₂·t2 + t_d₂), entries equal to the batch minimum set to 0
    """
    p, T = init, float(sim_length)
    t = torch.relu(torch.ceil((-torch.log(torch.relu(a / p.theta) + 1e-20) + p.t_d) / p.k))
    t = torch.where(t > T, T + 5, t)
    u = p.theta * torch.exp(-p.k * t + p.t_d)
    u = torch.where(u == u.min(), 0.0, u)
    t2 = torch.relu(torch.ceil((-torch.log(torch.relu((a - u) / p.theta2) + 1e-20) + p.t_d2) / p.k2))
    t2 = torch.where(t2 > T, T, t2)
    t2 = torch.where(t2 <= t, t, t2)
    u2 = p.theta2 * torch.exp(-p.k2 * t2 + p.t_d2)
    u2 = torch.where(u2 == u2.min(), 0.0, u2)
    return u + u2, t, t2, u, u2


def reference_decode(a: torch.Tensor, init: AECInit, window: int) -> torch.Tensor:
    """The reference's decoding of ``a`` for our window ``W`` (its ``sim_length = W − 1``: also W steps).

    A silent value is appended so that the batch minimum the reference zeroes is the code of
    values that do not fire (its way of silencing them), whatever else the batch holds.
    """
    flat = torch.cat([a.reshape(-1), torch.zeros(1, dtype=a.dtype)])
    return reference_code(flat, init, window - 1)[0][:-1].reshape(a.shape)


def test_the_transcription_is_the_reference_on_hand_worked_values():
    # sim_length 3: 0.5 ≥ thr1(1) → u = 0.3306; residual 0.1694 ≥ thr2(1) → t2 = max(1, 1) = 1
    decoded, t, t2, u, u2 = reference_code(torch.tensor([0.5, 0.0], dtype=torch.float64), INIT, 3)
    assert t.tolist() == [1.0, 8.0] and t2.tolist() == [1.0, 8.0]
    assert decoded[0].item() == pytest.approx(thr1(1) + thr2(1), rel=1e-14) and decoded[1].item() == 0.0


# -- the code, hand-worked -----------------------------------------------------------------------------------

@pytest.mark.parametrize("a,expected", [
    (0.5, (1, thr1(1), 1, thr2(1))),     # 0.5 ≥ thr1(1); residual 0.1694 ≥ thr2(1): same step
    (1.0, (0, thr1(0), 1, thr2(1))),     # saturates at τ=0; residual 0.1869 < thr2(0), ≥ thr2(1)
    (1.3, (0, thr1(0), 0, thr2(0))),     # residual 0.4869 ≥ thr2(0): both spikes at step 0
    (0.055, (3, thr1(3), 3, thr2(3))),   # primary at the last step; the compensating one is due there
    (0.19, (2, thr1(2), 3, thr2(3))),    # residual 0.0556 < thr2(2), ≥ thr2(3)
    (0.01, (4, 0.0, 4, 0.0)),            # below every threshold of the window: silent
    (-0.5, (4, 0.0, 4, 0.0)),
])
def test_hand_worked_exponential_thresholds(a, expected):
    t1, u1, t2, u2 = aec_code(torch.tensor([a], dtype=torch.float64), params64(), window=4)
    got = (int(t1), float(u1), int(t2), float(u2))
    assert got[0] == expected[0] and got[2] == expected[2]
    assert got[1] == pytest.approx(expected[1], rel=1e-12) and got[3] == pytest.approx(expected[3], rel=1e-12)


def step_node(a: torch.Tensor, window: int, depth: int, init: AECInit = INIT) -> torch.Tensor:
    """Run a node of ``depth`` on the value ``a`` delivered during its decoding windows."""
    node = AECNode(params64(init), window, depth).double()
    steps = (depth + 1) * window + 3
    x = torch.zeros(steps, *a.shape, dtype=torch.float64)
    x[depth * window - 1] = a  # arrives at the last decoding step
    with torch.no_grad():
        return node(x)


def edge_inputs(init: AECInit, window: int) -> torch.Tensor:
    """Values next to every threshold and every sum of two thresholds of the window, zeros, negatives, huge.

    Next to: 1e-9 relative, for thresholds above 1e-9·θ (below, the reference's 1e-20 inside
    the logarithm moves its boundaries by more), and for sums whose second term exceeds
    1e-5 of the first (else the subtraction that gives the residual rounds by more).
    """
    t = torch.arange(window, dtype=torch.float64)
    first = init.theta * torch.exp(init.t_d - init.k * t)
    second = init.theta2 * torch.exp(init.t_d2 - init.k2 * t)
    first, second = first[first > 1e-9 * init.theta], second[second > 1e-9 * init.theta2]
    pairs = second[None, :] > 1e-5 * first[:, None]
    sums = (first[:, None] + second[None, :])[pairs]
    near = torch.cat([first, sums])
    return torch.cat([near * (1 + 1e-9), near * (1 - 1e-9), first + 0.5 * second[:1],
                      torch.tensor([0.0, -0.0, -1.0, -1e-30, 1e3, 1e30, 1e-12, 1e-6], dtype=torch.float64)])


@pytest.mark.parametrize("init_name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("window", [4, 5, 8, 13, 16, 33, 64, 65])
def test_decoding_equals_the_reference_closed_form(init_name, window):
    init = INITS[init_name]
    g = torch.Generator().manual_seed(window)
    top = init.max_value()
    a = torch.cat([
        torch.rand(400, generator=g, dtype=torch.float64) * 1.3 * top - 0.1 * top,
        torch.exp(torch.rand(200, generator=g, dtype=torch.float64) * -25.0) * top,  # log-uniform down to ~1e-11
        edge_inputs(init, window),
    ])
    expected = reference_decode(a, init, window)
    _, u1, _, u2 = aec_code(a, params64(init), window)
    torch.testing.assert_close(u1 + u2, expected, rtol=1e-13, atol=1e-18)
    stepped = step_node(a, window, depth=1, init=init).sum(0)
    torch.testing.assert_close(stepped, expected, rtol=1e-13, atol=1e-18)


def test_precision_matches_the_reference_and_beats_strictly_later_compensation():
    # mean |decoded − a| for a ~ U(0, 0.95), W = 8: the two-spikes-in-one-step code vs one that
    # only lets the compensating spike come after the primary one
    a = (torch.arange(20000, dtype=torch.float64) + 0.5) / 20000 * 0.95
    ours = step_node(a, 8, depth=1).sum(0)
    error = (ours - a).abs().mean().item()
    assert error == pytest.approx((reference_decode(a, INIT, 8) - a).abs().mean().item(), rel=1e-12)
    t1 = torch.tensor([next((s for s in range(8) if thr1(s) <= v), 8) for v in a.tolist()])
    u1 = torch.tensor([thr1(s) if s < 8 else 0.0 for s in t1.tolist()], dtype=torch.float64)
    later = torch.tensor([next((thr2(s) for s in range(t + 1, 8) if thr2(s) <= r), 0.0) if t < 7 else 0.0
                          for t, r in zip(t1.tolist(), (a - u1).tolist())], dtype=torch.float64)
    assert error < 0.7 * (u1 + later - a).abs().mean().item()


@pytest.mark.parametrize("init_name", ["cifar10", "cifar100"])
def test_exact_ties_fire_at_the_threshold_they_reach(init_name):
    # a value equal to a threshold fires at that step (v >= threshold); the reference's rounded
    # logarithm puts some of these one step late (docs/aec.md)
    init = INITS[init_name]
    t = torch.arange(16, dtype=torch.float64)
    a = init.theta * torch.exp(init.t_d - init.k * t)
    t1, u1, t2, _ = aec_code(a, params64(init), window=16)
    assert torch.equal(t1, t) and torch.equal(u1, a) and torch.equal(t2, torch.full_like(t, 15.0))
    assert torch.equal(step_node(a, 16, depth=1, init=init).ne(0).float().argmax(0).double() - 16, t)


def test_the_smallest_code_of_a_batch_is_kept_when_every_value_fires():
    # the reference zeroes values equal to the batch minimum; with no silent value that is a real code
    a = torch.tensor([0.5, 1.0], dtype=torch.float64)
    _, u1, _, u2 = aec_code(a, params64(), window=4)
    assert (u1 > 0).all() and (u2 > 0).all()
    assert reference_code(a, INIT, 3)[3][0] == 0.0  # the reference drops 0.5's primary spike


@pytest.mark.parametrize("init_name", ["cifar10", "cifar100"])
def test_max_value_is_what_a_saturated_stepped_node_sends(init_name):
    init = INITS[init_name]
    expected = init.theta * math.exp(init.t_d) + init.theta2 * math.exp(init.t_d2)  # both at step 0
    assert init.max_value() == pytest.approx(expected, rel=1e-15)
    assert {"cifar10": 1.2625, "cifar100": 2.7878}[init_name] == pytest.approx(expected, abs=1e-4)
    a = torch.tensor([expected, 10.0, 1e6], dtype=torch.float64)
    torch.testing.assert_close(step_node(a, 4, depth=1, init=init).sum(0), torch.full_like(a, expected),
                               rtol=1e-15, atol=0)
    g = torch.Generator().manual_seed(0)
    below = torch.rand(1000, generator=g, dtype=torch.float64) * 2 * expected
    assert step_node(below, 8, depth=1, init=init).sum(0).max() <= expected


def test_an_encoder_scaled_to_a_reach_sends_that_reach():
    init = INIT.scaled(2.5 / INIT.max_value())
    enc = AECEncoder(init, 8).double()
    x = torch.tensor([[2.0, 2.5, 3.0, -2.5]], dtype=torch.float64)
    decoded = enc.encode(x, 0, 8).sum(0)
    assert decoded[0, 1].item() == pytest.approx(2.5, rel=1e-7) and decoded[0, 2].item() == pytest.approx(2.5)
    assert decoded[0, 3].item() == pytest.approx(-2.5) and decoded[0, 0].item() < decoded[0, 1].item()
    assert abs(decoded[0, 0].item() - 2.0) < 0.1


# -- the stepped node ----------------------------------------------------------------------------------------

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


def test_two_spikes_per_firing_neuron_only_in_its_window_and_reported_where_they_share_a_step():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 200, generator=g, dtype=torch.float64) * 2 - 0.3
    node = AECNode(params64(), 8, 2).double()
    reports = []
    node.register_double_spike_hook(lambda out, doubles: reports.append((out, doubles)))
    x = torch.zeros(27, 4, 200, dtype=torch.float64)
    x[15] = a
    with torch.no_grad():
        out = node(x)
    ((seen, doubles),) = reports
    assert seen is out and doubles.shape == out.shape
    t1, u1, t2, u2 = aec_code(a, params64(), 8)
    assert torch.equal(doubles.sum(0) > 0, (u1 > 0) & (t1 == t2))
    assert (out[doubles] != 0).all()
    spikes = (out != 0).sum(0) + doubles.sum(0)
    assert torch.equal(spikes, 2 * (a >= thr1(7)).long())  # exactly two per firing neuron, none otherwise
    assert doubles.any() and ((out != 0).sum(0) == 2).any()
    assert (out[:16] == 0).all() and (out[24:] == 0).all()


def _run_reporting(node: AECNode, calls: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and double-spike masks of ``node`` over several calls (a call without window steps reports none)."""
    outs, masks, got = [], [], []
    node.register_double_spike_hook(lambda out, doubles: got.append((out, doubles)))
    for x in calls:
        got.clear()
        out = node(x).detach()
        if got:
            ((seen, doubles),) = got
            assert seen.shape == doubles.shape == out.shape
        else:
            doubles = torch.zeros(out.shape, dtype=torch.bool)
        outs.append(out if node.step_mode == "m" else out.unsqueeze(0))
        masks.append(doubles if node.step_mode == "m" else doubles.unsqueeze(0))
    return torch.cat(outs), torch.cat(masks)


@pytest.mark.parametrize("mode", ["single-step", "chunks", "with-gradients"])
def test_double_spike_reports_agree_for_every_way_of_running_the_node(mode):
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(9, 3, 40, dtype=torch.float64)
    x[2] = torch.rand(3, 40, generator=g, dtype=torch.float64) * 1.5
    expected_out, expected = _run_reporting(AECNode(params64(), 3, 1).double(), [x])
    assert expected[3:6].any() and not expected[:3].any() and not expected[6:].any()
    node = AECNode(params64(), 3, 1).double()
    if mode == "single-step":
        node.step_mode = "s"
        calls = list(x)
    elif mode == "chunks":
        calls = list(x.split(4))
    else:
        calls = [x.clone().requires_grad_(True)]
    out, doubles = _run_reporting(node, calls)
    assert torch.equal(out, expected_out) and torch.equal(doubles, expected)


def test_encoder_sends_the_sign_and_the_code_of_each_pixel_in_window_zero():
    enc = AECEncoder(INIT, 4).double()
    x = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    seq = enc.encode(x, 0, 6)
    torch.testing.assert_close(seq.sum(0), enc.quantize(x))
    assert seq[1, 0, 0].item() == pytest.approx(thr1(1) + thr2(1))  # both spikes at step 1
    assert seq[0, 0, 1].item() == pytest.approx(-thr1(0)) and seq[1, 0, 1].item() == pytest.approx(-thr2(1))
    assert (seq[:, 0, 2] == 0).all()
    torch.testing.assert_close(torch.cat([enc.encode(x, 0, 3), enc.encode(x, 3, 3)]), seq)
    reports = []
    enc.register_double_spike_hook(lambda out, d: reports.append(d))
    enc.encode(x, 0, 6)
    assert reports[0].nonzero().tolist() == [[1, 0, 0]]


def test_bias_once_adds_the_bias_exactly_once_across_chunks():
    fold = TimeFold(BiasOnce(torch.tensor([1.0, -2.0])))
    fold.steps = 3
    total = fold(torch.zeros(3 * 2, 2)).sum(0) + fold(torch.zeros(3 * 2, 2)).sum(0)
    torch.testing.assert_close(total, torch.tensor([2.0, -4.0]))  # batch of 2, each once
    functional.reset_net(fold)
    assert fold.node.step == 0


# -- the network ---------------------------------------------------------------------------------------------

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


# -- energy, spike by spike ----------------------------------------------------------------------------------

def energy_network(window: int, conv: bool) -> CodedInput:
    """A masked AEC network without pooling (every synapse joins one input neuron to one output neuron)."""
    torch.manual_seed(3)
    if conv:
        body = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), AECActivation(INIT, window),
                             nn.Conv2d(4, 3, 3, padding=1), AECActivation(INIT, window),
                             nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
        shape = (2, 5, 5)
    else:
        body = nn.Sequential(nn.Flatten(), nn.Linear(12, 30), AECActivation(INIT, window),
                             nn.Linear(30, 30), AECActivation(INIT, window), nn.Linear(30, 4))
        shape = (12,)
    with torch.no_grad():
        for m in body:
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(3.0)  # activations over the whole code range
    random_masks(body, 0.6, generator=torch.Generator().manual_seed(4))
    return CodedInput(AECEncoder(INIT, window), body, shape).double().eval()


def spikes_per_step(a: torch.Tensor, init: AECInit, window: int, start: int, steps: int) -> torch.Tensor:
    """Spikes each neuron sends at each global step, ``[steps, *a.shape]``, from the reference's spike times."""
    flat = torch.cat([a.reshape(-1), torch.zeros(1, dtype=a.dtype)])
    _, t, t2, u, u2 = reference_code(flat, init, window - 1)
    counts = torch.zeros(steps, flat.numel(), dtype=torch.long)
    for time, value in ((t, u), (t2, u2)):
        fired = value != 0
        counts[start + time[fired].long(), fired.nonzero().flatten()] += 1
    return counts[:, :-1].reshape(steps, *a.shape)


def synapse_events(n: torch.Tensor, layer: nn.Module) -> int:
    """Σ over individual synapses (input i → output j, weight ≠ 0) of the spikes i sends; ``n`` is [B, ...]."""
    w = layer.weight
    if isinstance(layer, nn.Linear):
        n = n.flatten(1)
        return sum(int(n[:, i].sum()) for j in range(w.shape[0]) for i in range(w.shape[1]) if w[j, i] != 0)
    pad, (kh, kw) = layer.padding[0], w.shape[2:]
    padded = nn.functional.pad(n, (pad, pad, pad, pad))
    h_out, w_out = n.shape[2] + 2 * pad - kh + 1, n.shape[3] + 2 * pad - kw + 1
    total = 0
    for o in range(w.shape[0]):
        for c in range(w.shape[1]):
            for y in range(kh):
                for x in range(kw):
                    if w[o, c, y, x] != 0:  # this weight joins input (c, oy+y, ox+x) to every output (o, oy, ox)
                        total += int(padded[:, c, y:y + h_out, x:x + w_out].sum())
    return total


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv"])
def test_events_and_spike_counts_equal_a_count_over_individual_synapses(conv):
    window = 4
    coded = energy_network(window, conv)
    x = torch.randn(6, *coded.in_shape, dtype=torch.float64) * 1.5
    snn = get_method("aec")().convert(coded, window=window)
    steps = snn.latency
    # the spikes of every layer, from the closed-form network's activations and the reference's times
    layers = [m for m in coded.body if isinstance(m, (nn.Linear, nn.Conv2d))]
    acts = [m for m in coded.body if isinstance(m, AECActivation)]
    pre = {}
    hooks = [a.register_forward_hook(lambda m, args, out: pre.__setitem__(m, args[0])) for a in acts]
    with torch.no_grad():
        coded(x)
    for h in hooks:
        h.remove()
    enc_init = AECInit(**{k: float(v.detach()) for k, v in coded.encoder.code.as_dict().items()})
    inputs = [torch.sign(x).abs().long() * spikes_per_step(x.abs(), enc_init, window, 0, steps)]
    inputs += [spikes_per_step(pre[a], INIT, window, (d + 1) * window, steps) for d, a in enumerate(acts)]
    shared = sum(int(((n == 2)).sum()) for n in inputs)
    assert shared > 20  # many neurons send both spikes in one step

    synaptic = [n for n, m in snn.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    nodes = [n for n, m in snn.named_modules() if isinstance(m, AECNode)]
    events, spikes = SynapticEventMonitor(snn), SpikeCountMonitor(snn)  # the encoder's spikes too
    with torch.no_grad():
        functional.reset_net(snn)
        events.steps = spikes.steps = steps
        seq = snn.encoder.encode(x, 0, steps)
        snn(seq)
    per_layer, per_node = events.per_layer(), spikes.per_layer()
    events.remove_hooks()
    spikes.remove_hooks()
    for name, layer, n in zip(synaptic, layers, inputs):
        brute = [synapse_events(n[t], layer) for t in range(steps)]
        assert per_layer[name].tolist() == brute, name
    for name, n in zip(nodes, inputs[1:]):
        assert per_node[name].tolist() == n.flatten(1).sum(1).tolist(), name

    # the timeline, in chunks of 5 steps: every event an AC, the same totals
    curves = evaluate_over_time(snn, TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), steps,
                                chunk=5, progress=False)
    total = sum(synapse_events(n[t], layer) for layer, n in zip(layers, inputs) for t in range(steps))
    assert curves.ac[-1] * len(x) == pytest.approx(total, rel=1e-12) and curves.mac[-1] == 0
    fired = sum(int(n.sum()) for n in inputs[1:])
    assert curves.masfr[-1] * steps * curves.neurons * len(x) == pytest.approx(fired, rel=1e-12)


class _Doubles(nn.Module):
    """Sends a fixed output and reports a fixed double-spike mask (the protocol AEC nodes follow)."""

    def __init__(self, out: torch.Tensor, doubles: torch.Tensor):
        super().__init__()
        self.out, self.doubles, self.hooks = out, doubles, OrderedDict()

    def register_double_spike_hook(self, hook):
        from torch.utils.hooks import RemovableHandle

        handle = RemovableHandle(self.hooks)
        self.hooks[handle.id] = hook
        return handle

    def forward(self, x):
        out = self.out.clone()
        for hook in self.hooks.values():
            hook(out, self.doubles)
        return out


def test_a_pooled_position_carries_two_spikes_when_any_of_its_inputs_does():
    out = torch.zeros(1, 1, 4, 4)
    out[0, 0, 0, 0] = out[0, 0, 0, 1] = out[0, 0, 3, 3] = 1.0
    doubles = torch.zeros_like(out, dtype=torch.bool)
    doubles[0, 0, 0, 1] = True
    lin = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]]))
    net = nn.Sequential(_Doubles(out, doubles), nn.AvgPool2d(2), nn.Flatten(), lin)
    events = SynapticEventMonitor(net)
    net(torch.zeros(1))
    # pooled positions 0 (two spikes: one input double) and 3 (one spike); fan-outs 2 and 2
    assert events.per_layer()["3"].tolist() == [2 * 2 + 1 * 2]
    events.remove_hooks()


def test_default_windows_are_powers_of_two_up_to_t_max():
    method = get_method("aec")()
    assert method.windows(64) == [2, 4, 8, 16, 32, 64]
    assert method.windows(10) == [2, 4, 8]
    assert method.windows(1) == [1]
    assert get_method("aec")(windows=[3, 5, 100]).windows(64) == [3, 5]
    with pytest.raises(ValueError, match="windows"):
        get_method("aec")(windows=[0])
