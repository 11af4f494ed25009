"""The per-step count monitors share one base: ``StepCountMonitor`` hooks, finds the steps, records and joins."""

import pytest
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from sparse_convert.energy import (
    OperationCountMonitor,
    ProductEventMonitor,
    SpikeCountMonitor,
    StepCountMonitor,
    SynapticEventMonitor,
)
from sparse_convert.energy.neurobench import _NonzeroMonitor, _ValueTestMonitor


class InputSum(StepCountMonitor):
    """A new counter in a few lines: the sum of each Linear layer's input per step."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self._watch(net, nn.Linear)

    def count(self, name, module, x, steps):
        return x.reshape(steps, -1).sum(1, dtype=torch.float64)


class OutputNonzeros(StepCountMonitor):
    reads = "output"

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self._watch(net, neuron.IFNode)

    def count(self, name, module, out, steps):
        return (out != 0).reshape(steps, -1).sum(1, dtype=torch.float64)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(3, 4), neuron.IFNode(), layer.Linear(4, 2), neuron.IFNode())
    functional.set_step_mode(net, "m")
    return net


def test_a_new_counter_overrides_count_only():
    net, x = _net(), torch.rand(6, 5, 3)
    inputs, outputs = InputSum(net), OutputNonzeros(net)
    seen = {}
    hooks = [net[i].register_forward_hook(lambda m, a, out, i=i: seen.setdefault(i, out)) for i in (1, 3)]
    with torch.no_grad():
        net(x[:2])
        net(x[2:])  # two chunks: the records join into one [T] curve per layer
    for h in hooks:
        h.remove()
    functional.reset_net(net)
    assert inputs.monitored_layers == ["0", "2"] and outputs.monitored_layers == ["1", "3"]
    counts = inputs.per_layer()
    assert counts["0"].dtype == torch.float64 and counts["0"].shape == (6,)
    torch.testing.assert_close(counts["0"], x.sum((1, 2)).double())
    assert outputs.per_layer()["1"][:2].tolist() == (seen[1] != 0).sum((1, 2)).double().tolist()


def test_a_disabled_or_cleared_monitor_has_empty_curves_and_base_count_is_abstract():
    net = _net()
    monitor = InputSum(net)
    monitor.disable()
    with torch.no_grad():
        net(torch.rand(3, 2, 3))
    assert {k: v.tolist() for k, v in monitor.per_layer().items()} == {"0": [], "2": []}
    assert monitor.per_layer()["0"].dtype == torch.float64
    monitor.enable()
    with torch.no_grad():
        net(torch.rand(3, 2, 3))
    assert monitor.per_layer()["2"].shape == (3,)
    monitor.clear_recorded_data()
    assert monitor.per_layer()["2"].shape == (0,)
    monitor.remove_hooks()

    bare = StepCountMonitor(net)
    bare._watch(net, nn.Linear)
    with pytest.raises(NotImplementedError), torch.no_grad():
        net(torch.rand(1, 2, 3))
    bare.remove_hooks()


def test_every_count_monitor_is_a_step_count_monitor_with_its_empty_dtype():
    net = _net()
    monitors = [SynapticEventMonitor(net), SpikeCountMonitor(net), ProductEventMonitor(net),
                OperationCountMonitor(net), _ValueTestMonitor(net), _NonzeroMonitor(net)]
    assert all(isinstance(m, StepCountMonitor) for m in monitors)
    assert monitors[0].per_layer()["0"].dtype == torch.float64
    assert monitors[1].per_layer()["1"].dtype == torch.int64  # spikes are whole counts
    for m in monitors:
        m.remove_hooks()
