"""NeuroBench's own metrics on the same SNN and data equal ours (issue 13); skipped only without neurobench."""

import copy

import pytest
import torch
from spikingjelly.activation_based import layer, neuron
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from sparse_convert.energy import evaluate_over_time
from sparse_convert.energy.neurobench import NeuroBenchSNN, neurobench_block, neurobench_over_time
from sparse_convert.methods import MethodContext, get_method
from sparse_convert.topology import random_masks

neurobench = pytest.importorskip("neurobench", reason="neurobench is not installed (pip install -e '.[dev]')")
from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, SynapticOperations  # noqa: E402
from neurobench.models import TorchModel  # noqa: E402


def run_neurobench(snn, data, steps, batch_size):
    model = TorchModel(NeuroBenchSNN(snn, steps))
    model.add_activation_module(neuron.BaseNode)
    bench = Benchmark(model, DataLoader(data, batch_size=batch_size, shuffle=False), [], [],
                      [[ConnectionSparsity], [SynapticOperations, ActivationSparsity]])
    results = bench.run(quiet=True)
    ops = {k: float(v) for k, v in results["SynapticOperations"].items()}
    return {"synaptic_operations": ops, "activation_sparsity": float(results["ActivationSparsity"]),
            "connection_sparsity": float(results["ConnectionSparsity"])}


def assert_same(ours, theirs):
    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        assert ours["synaptic_operations"][key] == pytest.approx(theirs["synaptic_operations"][key], rel=1e-6), key
    assert ours["activation_sparsity"] == pytest.approx(theirs["activation_sparsity"], rel=1e-9)
    assert ours["connection_sparsity"] == theirs["connection_sparsity"]


def spikingjelly_net():
    torch.manual_seed(0)
    net = nn.Sequential(layer.Flatten(step_mode="m"), layer.Linear(16, 12, step_mode="m"), neuron.IFNode(step_mode="m"),
                        layer.Linear(12, 3, step_mode="m"))
    with torch.no_grad():
        net[1].weight.mul_(4)
    random_masks(net, 0.5, generator=torch.Generator().manual_seed(0))
    return net


@pytest.mark.parametrize("steps", [3, 5])
def test_neurobench_metrics_equal_ours_on_a_spikingjelly_network(steps):
    net = spikingjelly_net()
    data = TensorDataset(torch.rand(7, 1, 4, 4), torch.zeros(7, dtype=torch.long))
    ours = neurobench_over_time(net, data, 5, batch_size=3, chunk=2).at(steps)
    theirs = run_neurobench(net, data, steps, batch_size=3)
    assert theirs["synaptic_operations"]["Effective_ACs"] > 0 and theirs["synaptic_operations"]["Effective_MACs"] > 0
    assert_same(ours, theirs)


def test_neurobench_metrics_equal_ours_on_a_converted_snn():
    from sparse_convert.data import load_dataset
    from sparse_convert.models import build_model

    data = load_dataset("digits")
    torch.manual_seed(0)
    ann = build_model("mlp", data.num_classes, data.in_shape)
    random_masks(ann, 0.8, generator=torch.Generator().manual_seed(0))
    method = get_method("snm")()
    snn = method.convert(method.prepare(ann, MethodContext(data)))
    test = Subset(data.test, range(10))
    curves = neurobench_over_time(snn, test, 6, batch_size=4, chunk=4)
    assert_same(curves.at(6), run_neurobench(copy.deepcopy(snn), test, 6, batch_size=4))
    # θ-scaled signed spikes: MACs for NeuroBench's value test, ACs for our provenance rule
    ours = evaluate_over_time(snn, test, 6, batch_size=4, progress=False)
    assert curves.at(6)["synaptic_operations"]["Effective_ACs"] == 0
    assert ours.ac[-1] > 0
    assert curves.at(6)["synaptic_operations"]["Effective_MACs"] == pytest.approx(ours.mac[-1] + ours.ac[-1])
    block = neurobench_block(curves, 4)
    assert block["at_chosen_t"] == curves.at(4) and block["at_t_max"] == curves.at(6)
