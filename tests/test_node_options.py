"""Nodes take SpikingJelly's usual keywords and either backpropagate through time or refuse to (issue 13)."""

import pytest
import torch
from spikingjelly.activation_based import functional, surrogate
from torch import nn

from sparse_convert.neurons import AECNode, CSQCFSNode, SNMNode, STBIFNode
from sparse_convert.neurons.aec import PARAM_NAMES


class Smooth(nn.Module):
    """A smooth stand-in for the spike function, so that finite differences see the gradient autograd computes."""

    def forward(self, h):
        return torch.sigmoid(3.0 * h)


def make(kind, **kw):
    if kind == "aec":  # window 2 after one window of integration: steps 2 and 3 fire
        params = {name: torch.tensor(v, dtype=torch.float64) for name, v in zip(PARAM_NAMES, AEC_PARAMS)}
        return AECNode(params, window=2, depth=1, **kw)
    if kind == "csqcfs":
        return CSQCFSNode(torch.zeros(3, dtype=torch.float64), **kw)
    if kind == "snm":
        return SNMNode(torch.tensor([0.8, 1.0, 1.2], dtype=torch.float64), **kw)
    return STBIFNode(torch.tensor(0.5, dtype=torch.float64), -6, 6, **kw)


AEC_PARAMS = (1.0, 0.0, 0.5, 0.5, 0.0, 0.5)
NODES = ["csqcfs", "snm", "stbif", "aec"]


@pytest.mark.parametrize("kind", NODES)
def test_nodes_backpropagate_through_time_to_the_weights_before_them(kind):
    torch.manual_seed(0)
    lin = nn.Linear(4, 3).double()
    node = make(kind, surrogate_function=surrogate.ATan())
    node(lin(torch.rand(6, 2, 4, dtype=torch.float64) * 2)).sum().backward()
    assert lin.weight.grad is not None and bool(lin.weight.grad.abs().sum() > 0)


@pytest.mark.parametrize("kind", NODES)
def test_the_gradient_through_time_equals_finite_differences(kind):
    """With a smooth spike function the node is a smooth function of its input: gradcheck holds."""
    torch.manual_seed(1)
    x = (torch.rand(4, 2, 3, dtype=torch.float64) * 2 - 0.5).requires_grad_()

    def run(x_seq):
        node = make(kind, surrogate_function=Smooth())
        return node(x_seq)

    assert torch.autograd.gradcheck(run, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", NODES)
def test_the_surrogate_path_gives_the_inference_outputs(kind):
    torch.manual_seed(2)
    x = torch.randn(8, 3, 3, dtype=torch.float64) * 1.5
    with torch.no_grad():
        expected = make(kind)(x)
    got = make(kind)(x.clone().requires_grad_())
    assert torch.equal(got.detach(), expected)


@pytest.mark.parametrize("kind", NODES)
def test_detach_reset_cuts_the_gradient_through_the_reset(kind):
    x = (torch.rand(5, 1, 3, dtype=torch.float64) * 2).requires_grad_()
    grads = []
    for detach in (False, True):
        make(kind, detach_reset=detach)(x).sum().backward()
        grads.append(x.grad.clone())
        x.grad = None
    assert not torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("kind", NODES)
def test_store_v_seq_records_the_membrane_of_every_step(kind):
    node = make(kind, store_v_seq=True)
    x = torch.rand(5, 2, 3, dtype=torch.float64)
    node(x)
    assert node.v_seq.shape == (5, 2, 3)
    assert torch.equal(node.v_seq[-1], node.v)
    functional.reset_net(node)
    plain = make(kind)
    assert torch.equal(plain(x), make(kind, store_v_seq=True)(x))


def test_v_threshold_reads_the_real_threshold():
    node = CSQCFSNode(torch.tensor([0.0, 1.0]))
    assert torch.equal(node.v_threshold, nn.functional.softplus(torch.tensor([0.0, 1.0])))
    assert torch.equal(make("snm").v_threshold, torch.tensor([0.8, 1.0, 1.2], dtype=torch.float64))
    assert float(make("stbif").v_threshold) == 0.5
    with pytest.raises(AttributeError, match="reads its threshold tensor"):
        node.v_threshold = 2.0


def test_thresholds_and_resets_that_the_nodes_do_not_take_are_refused():
    with pytest.raises(TypeError, match="v_threshold"):
        SNMNode(torch.ones(3), v_threshold=1.0)
    with pytest.raises(TypeError, match="v_reset"):
        CSQCFSNode(torch.zeros(3), v_reset=0.0)
