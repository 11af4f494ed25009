"""SNM: the memory rule, neuron-wise thresholds, signed events, conversion."""

import copy

import pytest
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import count_events, evaluate_over_time, layer_fanout
from sparse_convert.methods import MethodContext, get_method
from sparse_convert.methods.transforms import neuron_percentiles
from sparse_convert.neurons import NeuronClip, SNMNode


def run(node, xs):
    functional.reset_net(node)
    with torch.no_grad():
        return node(torch.tensor(xs, dtype=torch.float32).reshape(len(xs), 1, 1))[:, 0, 0].tolist()


def test_negative_spike_is_refused_while_net_output_is_not_positive():
    node = SNMNode(torch.tensor([1.0]))
    assert isinstance(node, neuron.BaseNode)
    # v: -1.5 (≤ −θ, but nothing sent yet: refused) → stays −1.5
    assert run(node, [-1.5]) == [0.0]
    # +1.2 fires (v=.2); −1.5 → v=−1.3 ≤ −θ with one net spike: −θ (v=−.3); −1 → v=−1.3, net 0: refused
    assert run(node, [1.2, -1.5, -1.0]) == [1.0, -1.0, 0.0]
    torch.testing.assert_close(node.v, torch.tensor([[-1.3]]))


def test_positive_spikes_carry_the_threshold_and_reset_by_subtraction():
    node = SNMNode(torch.tensor([0.5]))
    assert run(node, [0.3, 0.3, 0.3, 0.3]) == [0.0, 0.5, 0.0, 0.5]
    torch.testing.assert_close(node.v, torch.tensor([[0.2]]))


def test_initial_potential_is_a_fraction_of_the_threshold():
    node = SNMNode(torch.tensor([1.0]), v_init=0.5)
    # v starts at 0.5: 0.6 fires at once (v=.1), 0.3 → .4, 0.3 → .7, 0.3 → 1.0 fires (v=0)
    assert run(node, [0.6, 0.3, 0.3, 0.3]) == [1.0, 0.0, 0.0, 1.0]
    assert run(SNMNode(torch.tensor([1.0])), [0.6, 0.3, 0.3, 0.3]) == [0.0, 0.0, 1.0, 0.0]  # reference: v from 0
    with pytest.raises(ValueError, match="v_init"):
        SNMNode(torch.tensor([1.0]), v_init=1.0)


def test_silent_neurons_with_zero_threshold_never_fire():
    node = SNMNode(torch.tensor([0.0, 1.0]))
    with torch.no_grad():
        out = node(torch.full((5, 1, 2), 3.0))
    assert (out[:, :, 0] == 0).all() and (out[:, :, 1] == 1).all()


def test_rate_approaches_the_clipped_relu_as_t_grows():
    g = torch.Generator().manual_seed(0)
    theta = torch.rand(20, generator=g, dtype=torch.float64) + 0.2
    x = (torch.rand(64, 20, generator=g, dtype=torch.float64) * 3 - 1) * theta
    clip = NeuronClip(theta)(x)
    node = SNMNode(theta).double()
    for steps in (16, 64, 256):
        functional.reset_net(node)
        with torch.no_grad():
            rate = node(x.unsqueeze(0).expand(steps, 64, 20).contiguous()).mean(0)
        assert (rate - clip).abs().max().item() <= theta.max().item() / steps + 1e-12


def test_fast_loop_equals_the_functional_definition():
    g = torch.Generator().manual_seed(1)
    node = SNMNode(torch.rand(3, 4, 4, generator=g))
    ref = copy.deepcopy(node)
    x = torch.randn(20, 2, 3, 4, 4, generator=g)
    with torch.no_grad():
        fast = node(x)
    x_ref = x.clone().requires_grad_(True)  # forces the step-by-step autograd path
    torch.testing.assert_close(fast, ref(x_ref).detach())
    torch.testing.assert_close(node.count, ref.count.detach())


def test_neuron_wise_thresholds_are_per_neuron_not_per_batch_element():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
    data = torch.randn(37, 5)
    batches = list(data.split(10))  # uneven last batch: no fixed batch size needed
    maxima = neuron_percentiles(net, batches, ["1"], 100.0, num_samples=37)["1"]
    with torch.no_grad():
        acts = net(data).double()
    assert maxima.shape == (7,)
    torch.testing.assert_close(maxima.double(), acts.max(0).values)
    p90 = neuron_percentiles(net, batches, ["1"], 90.0, num_samples=37)["1"]
    k = int(0.1 * 37) + 1  # nearest rank: the k-th largest of 37
    torch.testing.assert_close(p90.double(), acts.topk(k, dim=0).values[-1])
    with pytest.raises(ValueError, match="expected 40 samples"):
        neuron_percentiles(net, batches, ["1"], 100.0, num_samples=40)


def test_a_negative_spike_is_one_ac_event():
    lin = nn.Linear(3, 2)
    x = torch.tensor([[-0.7, 0.0, 0.7]])  # an SNM spike of −θ and one of +θ
    assert count_events(x, layer_fanout(lin, (3,)), steps=1).item() == 4


def test_snm_conversion_matches_its_ann_on_a_small_network():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.rand(200, 6)
    data = TensorDataset(x, torch.zeros(200, dtype=torch.long))
    from sparse_convert.data import DataSplits

    splits = DataSplits("toy", data, data, data, 3, (6,))
    method = get_method("snm")()
    prepared = method.prepare(copy.deepcopy(ann), MethodContext(splits, progress=False))
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), ann(x))  # clipping at the maximum changes nothing here
    snn = method.convert(prepared)
    err = (snn.rate_output(x, 512) - ann(x)).abs().max().item()
    assert err < 0.05
    curves = evaluate_over_time(snn, data, 8, progress=False)
    assert curves.roles == {"body.0": "mac", "body.2": "ac", "body.4": "ac"}
