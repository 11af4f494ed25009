"""CS-QCFS: the ANN activation, the IF node, and the converted network against its ANN."""

import copy

import pytest
import torch
from spikingjelly.activation_based import functional, neuron
from torch import nn

from sparse_convert.methods import SpikingNetwork, get_method
from sparse_convert.neurons import SQCFS, CSQCFSNode, inverse_softplus
from sparse_convert.topology import get_mask, random_masks


def test_sqcfs_hand_computed_values():
    act = SQCFS(levels=4, threshold=2.0)
    x = torch.tensor([-1.0, 0.0, 0.2, 0.25, 0.26, 0.74, 1.0, 2.5])
    # x·L/θ + 1/2 = [-1.5, .5, .9, 1, 1.02, 1.98, 2.5, 5.5] → floor/L, clip to [0, 1], × θ
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0, 2.0])
    torch.testing.assert_close(act(x), expected)
    assert act.threshold.item() == pytest.approx(2.0)


def test_sqcfs_gradient_is_straight_through_inside_the_clip_range():
    act = SQCFS(levels=4, threshold=2.0)
    x = torch.tensor([-0.5, 0.3, 1.1, 2.5], requires_grad=True)
    act(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    assert act.raw_threshold.grad is not None and act.raw_threshold.grad.abs().sum() > 0


def test_expand_channels_starts_each_channel_at_the_layer_threshold():
    act = SQCFS(levels=8, threshold=1.5)
    x = torch.randn(4, 6, 3, 3)
    before = act(x)
    act.expand_channels(6)
    assert act.raw_threshold.shape == (6,)
    torch.testing.assert_close(act.threshold, torch.full((6,), 1.5))
    torch.testing.assert_close(act(x), before)
    with pytest.raises(ValueError, match="expand 6 thresholds to 4"):
        act.expand_channels(4)


def test_node_is_a_spikingjelly_node_with_half_threshold_start_and_reset():
    node = CSQCFSNode(inverse_softplus(torch.tensor([1.0, 2.0])))
    assert isinstance(node, neuron.BaseNode) and node.step_mode == "m"
    out = node(torch.zeros(1, 1, 2))
    assert (out == 0).all()
    torch.testing.assert_close(node.v, torch.tensor([[0.5, 1.0]]))
    functional.reset_net(node)
    assert not torch.is_tensor(node.v)
    # v = θ/2 + x fires at once when x >= θ/2, and carries the rest
    out = node(torch.tensor([[[0.5, 0.9]]]))
    torch.testing.assert_close(out, torch.tensor([[[1.0, 0.0]]]))
    torch.testing.assert_close(node.v, torch.tensor([[0.0, 1.9]]))


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 8, 16, 64])
def test_node_rate_for_constant_input_equals_qcfs_with_levels_equal_steps(steps):
    """v_T = θ/2 + T·x − θ·n fires n = clip(floor(T·x/θ + 1/2), 0, T) times: the QCFS output with L = T."""
    g = torch.Generator().manual_seed(steps)
    theta = 0.2 + 2 * torch.rand(5, generator=g, dtype=torch.float64)
    x = (torch.rand(7, 5, generator=g, dtype=torch.float64) * 3 - 0.5) * theta
    act = SQCFS(levels=steps, threshold=theta).double()
    node = CSQCFSNode(act.raw_threshold.detach()).double()
    rate = node(x.unsqueeze(0).expand(steps, 7, 5).contiguous()).mean(0)
    torch.testing.assert_close(rate, act(x), rtol=0, atol=1e-12)


def _random_qann(levels: int) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 50), SQCFS(levels, 1.0), nn.Linear(50, 50), SQCFS(levels, 1.0),
                        nn.Linear(50, 10)).double()
    for m in net:
        if isinstance(m, SQCFS):
            m.expand_channels(50)
            with torch.no_grad():
                m.raw_threshold.add_(0.3 * torch.randn(50, dtype=torch.float64))
    random_masks(net, 0.5, generator=torch.Generator().manual_seed(0))
    return net


def test_converted_network_converges_to_its_ann_as_t_grows():
    """Mean |SNN rate − ANN| ≤ 0.2/T and max ≤ 1/T against the ANN's L → ∞ limit (clip, no floor),
    and at T = L the SNN is within 0.05 of the quantized ANN itself."""
    levels = 8
    qann = _random_qann(levels)
    limit = copy.deepcopy(qann)
    for m in limit:
        if isinstance(m, SQCFS):
            m.levels = 10**7
    x = torch.rand(256, 20, dtype=torch.float64)
    snn = get_method("qcfs")().convert(qann)
    target = limit(x)
    errors = []
    for steps in (8, 16, 32, 64, 128, 256, 1024):
        err = (snn.rate_output(x, steps) - target).abs()
        assert err.mean().item() <= 0.2 / steps
        assert err.max().item() <= 1.0 / steps
        errors.append(err.mean().item())
    assert errors == sorted(errors, reverse=True)
    at_l = (snn.rate_output(x, levels) - qann(x)).abs().max().item()
    assert at_l <= 0.05


def test_conversion_carries_weights_masks_and_thresholds_and_leaves_the_ann_intact():
    qann = _random_qann(4)
    before = copy.deepcopy(qann.state_dict())
    snn = get_method("qcfs")().convert(qann)
    assert isinstance(snn, SpikingNetwork)
    for k, v in qann.state_dict().items():
        assert torch.equal(v, before[k])
    nodes = [m for m in snn.modules() if isinstance(m, CSQCFSNode)]
    acts = [m for m in qann.modules() if isinstance(m, SQCFS)]
    assert len(nodes) == len(acts) == 2
    for node, act in zip(nodes, acts):
        torch.testing.assert_close(node.threshold, act.threshold.detach())
    for name in ("0", "2"):
        layer = snn.body.get_submodule(name)
        assert torch.equal(get_mask(layer), get_mask(qann.get_submodule(name)))
        assert torch.equal(layer.weight, qann.get_submodule(name).weight)


def test_fast_multi_step_loop_equals_the_functional_definition():
    g = torch.Generator().manual_seed(0)
    node_fast = CSQCFSNode(torch.randn(6, generator=g))
    node_ref = copy.deepcopy(node_fast)
    x = torch.randn(12, 3, 6, 4, 4, generator=g)
    with torch.no_grad():
        fast = node_fast(x)
    node_ref.raw_threshold.requires_grad_(True)  # forces the autograd path: step by step
    ref = node_ref(x)
    torch.testing.assert_close(fast, ref.detach())
    torch.testing.assert_close(node_fast.v, node_ref.v.detach())


def test_single_step_mode_equals_multi_step_mode():
    g = torch.Generator().manual_seed(1)
    multi = CSQCFSNode(torch.randn(4, generator=g))
    single = copy.deepcopy(multi)
    single.step_mode = "s"
    x = torch.randn(10, 2, 4, generator=g)
    with torch.no_grad():
        expected = multi(x)
        got = torch.stack([single(x_t) for x_t in x])
    torch.testing.assert_close(got, expected)


def test_chunked_simulation_equals_one_call():
    qann = _random_qann(4)
    snn = get_method("qcfs")().convert(qann)
    x = torch.rand(5, 20, dtype=torch.float64)
    with torch.no_grad():
        whole = snn(snn.encoder.encode(x, 0, 12))
        functional.reset_net(snn)
        parts = torch.cat([snn(snn.encoder.encode(x, t0, 4)) for t0 in (0, 4, 8)])
    torch.testing.assert_close(parts, whole)


def test_set_backend_switches_every_node_and_cupy_needs_cuda_or_cupy():
    from sparse_convert.neurons import set_backend
    from sparse_convert.neurons.cupy_backend import cupy_available

    snn = get_method("qcfs")().convert(_random_qann(4))
    assert set_backend(snn, "torch") == 2
    with pytest.raises(ValueError, match="backend must be one of"):
        set_backend(snn, "numba")
    if not cupy_available():
        with pytest.raises(RuntimeError, match="cupy"):
            set_backend(snn, "cupy")
