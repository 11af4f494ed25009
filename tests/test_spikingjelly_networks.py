"""Counting on SpikingJelly networks built the usual ways (issue 13): every count equals a brute force.

Each network below computes the same function (masked Linear → IF → Linear, or a Conv1d
net); the reference is a single-step run whose layer inputs are recorded by plain hooks
and counted one synapse at a time.
"""

import copy
import itertools

import pytest
import torch
from spikingjelly.activation_based import ann2snn, encoding, functional, layer, neuron
from spikingjelly.activation_based.ann2snn.recipes import RateCodingRecipe
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import SpikeCountMonitor, SynapticEventMonitor, evaluate_over_time
from sparse_convert.methods import MethodContext, get_method
from sparse_convert.topology import attach_mask, random_masks

T, B = 4, 5


def brute_linear(x: torch.Tensor, w: torch.Tensor) -> int:
    """Σ over samples, inputs j, outputs i of [x_j ≠ 0][w_ij ≠ 0], one synapse at a time."""
    x = x.reshape(-1, w.shape[1])
    return sum(1 for b, j, i in itertools.product(range(x.shape[0]), range(w.shape[1]), range(w.shape[0]))
               if x[b, j] != 0 and w[i, j] != 0)


def brute_conv1d(x: torch.Tensor, conv: nn.Conv1d) -> int:
    """Every (output position, kernel tap) whose input and weight are both nonzero (zero padding)."""
    w, (s,), (p,), (d,), g = conv.weight, conv.stride, conv.padding, conv.dilation, conv.groups
    n, _, length = x.shape
    c_out, c_per_group, k = w.shape
    l_out = (length + 2 * p - d * (k - 1) - 1) // s + 1
    count = 0
    for b, oc, o in itertools.product(range(n), range(c_out), range(l_out)):
        group = oc // (c_out // g)
        for ic, tap in itertools.product(range(c_per_group), range(k)):
            pos = o * s - p + tap * d
            if 0 <= pos < length and w[oc, ic, tap] != 0 and x[b, group * c_per_group + ic, pos] != 0:
                count += 1
    return count


def layers(seed=0):
    torch.manual_seed(seed)
    first, second = nn.Linear(12, 8), nn.Linear(8, 4)
    with torch.no_grad():
        first.weight.mul_(3)
    attach_mask(first, torch.rand(8, 12) < 0.5)
    attach_mask(second, torch.rand(4, 8) < 0.6)
    return first, second


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, 12, generator=g)
    x[x < 0.3] = 0  # zeros in the analog input too
    return x


def reference_counts(x_seq):
    """Brute-force events per step of both layers, from a plain single-step loop with recording hooks."""
    first, second = layers()
    net = nn.Sequential(first, neuron.IFNode(), second)
    seen = {"0": [], "2": []}
    for name in seen:
        net.get_submodule(name).register_forward_pre_hook(lambda m, a, name=name: seen[name].append(a[0].clone()))
    with torch.no_grad():
        for t in range(T):
            net(x_seq[t])
    return {"0": [brute_linear(x, first.weight) for x in seen["0"]],
            "2": [brute_linear(x, second.weight) for x in seen["2"]]}


def per_layer(monitor, names):
    counts = monitor.per_layer()
    return {short: counts[name].tolist() for short, name in names.items()}


def run_single_step_loop(x_seq):
    first, second = layers()
    net = nn.Sequential(first, neuron.IFNode(), second)
    events = SynapticEventMonitor(net)
    with torch.no_grad():
        for t in range(T):
            net(x_seq[t])
    return per_layer(events, {"0": "0", "2": "2"})


def run_multi_step_forward(x_seq):
    first, second = layers()
    net = nn.Sequential(first, neuron.IFNode(), second)
    events = SynapticEventMonitor(net)
    with torch.no_grad():
        functional.multi_step_forward(x_seq, net)
    return per_layer(events, {"0": "0", "2": "2"})


def _run_in_chunks(net, x_seq, chunks, names):
    """Events per layer of ``net`` called on ``x_seq`` in consecutive chunks of ``chunks`` steps."""
    events = SynapticEventMonitor(net)
    t0 = 0
    with torch.no_grad():
        for k in chunks:
            net(x_seq[t0:t0 + k])
            t0 += k
    return per_layer(events, names)


def run_multi_step_container(x_seq, chunks=(T,)):
    first, second = layers()
    net = layer.MultiStepContainer(first, neuron.IFNode(), second)
    return _run_in_chunks(net, x_seq, chunks, {"0": "0", "2": "2"})


def run_seq_to_ann(x_seq, chunks=(T,)):
    first, second = layers()
    net = nn.Sequential(layer.SeqToANNContainer(first), neuron.IFNode(step_mode="m"), layer.SeqToANNContainer(second))
    return _run_in_chunks(net, x_seq, chunks, {"0": "0.0", "2": "2.0"})


@pytest.mark.parametrize("run", [
    run_single_step_loop,
    run_multi_step_forward,
    run_multi_step_container,
    lambda x: run_multi_step_container(x, chunks=(1, 3)),
    run_seq_to_ann,
    lambda x: run_seq_to_ann(x, chunks=(3, 1)),
], ids=["single-step loop", "multi_step_forward", "MultiStepContainer", "MultiStepContainer chunked",
        "SeqToANNContainer", "SeqToANNContainer chunked"])
def test_events_per_step_equal_a_brute_force_however_the_network_steps_time(run):
    x_seq = inputs()
    assert run(x_seq) == reference_counts(x_seq)


@pytest.mark.parametrize("batch_size", [2, 5, 3])
def test_evaluate_over_time_on_a_multi_step_container_equals_a_brute_force(batch_size):
    x_seq = inputs()
    first, second = layers()
    net = layer.MultiStepContainer(first, neuron.IFNode(), second)
    static = x_seq[0]  # direct encoding: the same input every step
    data = TensorDataset(static, torch.zeros(B, dtype=torch.long))
    curves = evaluate_over_time(net, data, T, batch_size=batch_size, chunk=3, progress=False)
    expected = reference_counts(static.expand(T, *static.shape))
    assert curves.roles == {"0": "mac", "2": "ac"}
    assert curves.mac[-1] * B == sum(expected["0"])
    assert curves.ac[-1] * B == sum(expected["2"])


def test_a_monitor_told_the_wrong_steps_raises_instead_of_counting():
    net = nn.Sequential(layer.Linear(12, 8, step_mode="m"), neuron.IFNode(step_mode="m"))
    events = SynapticEventMonitor(net)
    events.steps = 3
    with pytest.raises(ValueError, match="steps = 3, but this call .* carries 4 time steps"):
        net(inputs())


def test_steps_that_cannot_be_known_are_an_error():
    # a multi-step node beside a plain Linear left in single-step mode and fed [T·B, F]
    net = nn.Sequential(layer.Flatten(0, 1, step_mode="s"), nn.Linear(12, 8), nn.Unflatten(0, (T, B)),
                        neuron.IFNode(step_mode="m"))
    SynapticEventMonitor(net)
    with pytest.raises(ValueError, match="cannot tell how many time steps the call of 1"):
        net(inputs())


def test_spike_counts_follow_one_call_per_step():
    first, second = layers()
    net = layer.MultiStepContainer(first, neuron.IFNode(), second)
    spikes = SpikeCountMonitor(net)
    with torch.no_grad():
        out_seq = []
        node = net[1]
        node.register_forward_hook(lambda m, a, out: out_seq.append(out.clone()))
        net(inputs())
    assert spikes.per_layer()["1"].tolist() == [int((s != 0).sum()) for s in out_seq]
    assert spikes.neurons_seen["1"] == B * 8


# -- roles through SpikingJelly's converter and encoders ----------------------------------------------


def converted_mlp():
    torch.manual_seed(0)
    ann = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    random_masks(ann, 0.5, generator=torch.Generator().manual_seed(0))
    data = [(torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)) for _ in range(2)]
    return ann2snn.Converter(RateCodingRecipe(dataloader=data, mode="max")).convert(ann)


def test_spikingjellys_converter_is_counted_with_acs_after_its_voltage_scalers():
    snn = converted_mlp()
    x = torch.rand(6, 1, 4, 4)
    data = TensorDataset(x, torch.zeros(6, dtype=torch.long))
    curves = evaluate_over_time(snn, data, 5, batch_size=4, chunk=2, progress=False)
    hand = {"1": "mac", "3": "ac", "5": "ac"}
    assert curves.roles == hand
    assert curves.to_dict() == evaluate_over_time(snn, data, 5, batch_size=4, chunk=2, roles=hand,
                                                  progress=False).to_dict()
    # brute force: record each layer's input step by step (a single-step network) and count synapses
    seen = {name: [] for name in hand}
    hooks = [snn.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: seen[n].append(a[0].clone()))
             for n in hand]
    functional.reset_net(snn)
    with torch.no_grad():
        for _ in range(5):
            snn(x)
    for h in hooks:
        h.remove()
    brute = {n: sum(brute_linear(inp, snn.get_submodule(n).weight) for inp in seen[n]) for n in hand}
    assert curves.mac[-1] * 6 == brute["1"]
    assert curves.ac[-1] * 6 == brute["3"] + brute["5"]


def test_a_poisson_encoder_inside_the_network_makes_the_first_layer_do_acs():
    first, second = layers()
    net = nn.Sequential(encoding.PoissonEncoder(step_mode="m"), layer.SeqToANNContainer(first),
                        neuron.IFNode(step_mode="m"), layer.SeqToANNContainer(second))
    data = TensorDataset(torch.rand(4, 12), torch.zeros(4, dtype=torch.long))
    curves = evaluate_over_time(net, data, 3, progress=False)
    assert curves.roles == {"1.0": "ac", "3.0": "ac"}
    assert curves.mac[-1] == 0


# -- every synaptic layer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: nn.Conv1d(3, 4, 3, padding=1),
    lambda: layer.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2),
    lambda: nn.Conv1d(4, 4, 3, groups=2, padding=1),
], ids=["Conv1d", "layer.Conv1d strided dilated", "Conv1d groups"])
def test_conv1d_takes_a_mask_and_its_events_equal_a_brute_force(make):
    torch.manual_seed(0)
    conv = make()
    attach_mask(conv, torch.rand(conv.weight.shape) < 0.5)
    assert bool((conv.weight[~conv.weight_mask] == 0).all())
    net = nn.Sequential(neuron.IFNode(), conv)
    x = torch.rand(B, conv.in_channels, 9) * 2
    events = SynapticEventMonitor(net)
    seen = []
    conv.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    with torch.no_grad():
        for _ in range(3):
            net(x)
    assert events.per_layer()["1"].tolist() == [brute_conv1d(s, conv) for s in seen]


def test_evaluate_over_time_counts_a_conv1d_network():
    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv1d(2, 3, 3, padding=1, step_mode="m"), neuron.IFNode(step_mode="m"),
                        layer.Flatten(step_mode="m"), layer.Linear(3 * 6, 2, step_mode="m"))
    x = torch.rand(3, 2, 6)
    curves = evaluate_over_time(net, TensorDataset(x, torch.zeros(3, dtype=torch.long)), 2, progress=False)
    assert curves.roles == {"0": "mac", "3": "ac"}
    assert curves.mac[-1] * 3 == 2 * brute_conv1d(x, net[0])


@pytest.mark.parametrize("make", [lambda: layer.WSConv2d(2, 3, 3), lambda: layer.WSLinear(4, 3)],
                         ids=["WSConv2d", "WSLinear"])
def test_weight_standardised_layers_refuse_a_mask(make):
    ws = make()
    with pytest.raises(TypeError, match="cannot mask WS.*weight standardisation"):
        attach_mask(ws, torch.ones_like(ws.weight))


def test_a_parametrized_weight_refuses_a_mask():
    lin = nn.utils.parametrizations.orthogonal(nn.Linear(3, 3))
    with pytest.raises(TypeError, match="parametrized"):
        attach_mask(lin, torch.ones(3, 3))


def test_weight_standardised_layers_are_counted_with_the_weight_they_use():
    torch.manual_seed(0)
    ws = layer.WSLinear(4, 3)
    with torch.no_grad():
        ws.weight[0, :2] = 0  # zero here, nonzero once standardised
    net = nn.Sequential(neuron.IFNode(), ws)
    events = SynapticEventMonitor(net)
    x = torch.tensor([[2.0, 2.0, 0.0, 2.0]])
    net(x)
    assert events.per_layer()["1"].tolist() == [brute_linear(x, ws.get_weight().detach())] == [9]


def test_a_synaptic_layer_without_an_event_rule_is_an_error_naming_it():
    net = nn.Sequential(neuron.IFNode(), nn.ConvTranspose2d(2, 2, 3))
    events = SynapticEventMonitor(net)
    assert list(events.uncounted) == ["1"]
    with pytest.raises(TypeError, match="1 \\(ConvTranspose2d\\) holds synapses but has no synaptic-event rule"):
        net(torch.rand(1, 2, 4, 4) * 2)
    events.remove_hooks()
    lenient = SynapticEventMonitor(net, strict=False)
    with pytest.warns(UserWarning, match="ConvTranspose2d"):
        net(torch.rand(1, 2, 4, 4) * 2)
    lenient.remove_hooks()


# -- step modes of a converted SpikingNetwork ----------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_snn():
    from sparse_convert.data import load_dataset
    from sparse_convert.models import build_model

    data = load_dataset("digits")
    torch.manual_seed(0)
    ann = build_model("mlp", data.num_classes, data.in_shape)
    method = get_method("snm")()
    return method.convert(method.prepare(ann, MethodContext(data))), data


def test_a_converted_network_in_single_step_mode_gives_the_multi_step_outputs(digits_snn):
    snn, data = digits_snn
    snn = copy.deepcopy(snn)
    x = torch.stack([data.test[i][0] for i in range(4)])
    x_seq = snn.encoder.encode(x, 0, 5)
    with torch.no_grad():
        functional.reset_net(snn)
        multi = snn(x_seq)
        functional.set_step_mode(snn, "s")
        functional.reset_net(snn)
        single = torch.stack([snn(x_seq[t]) for t in range(5)])
        functional.reset_net(snn)
    assert torch.equal(single, multi)
    curves_s = evaluate_over_time(snn, torch.utils.data.Subset(data.test, range(8)), 4, progress=False)
    functional.set_step_mode(snn, "m")
    curves_m = evaluate_over_time(snn, torch.utils.data.Subset(data.test, range(8)), 4, progress=False)
    assert curves_s.to_dict() == curves_m.to_dict()


def test_a_converted_network_refuses_mixed_step_modes(digits_snn):
    snn = copy.deepcopy(digits_snn[0])
    snn.folds()[0].node.step_mode = "s"
    with pytest.raises(ValueError, match="use functional.set_step_mode"):
        snn(torch.rand(2, 1, 64))
