"""Transformer energy: pairs of nonzeros in activation-activation products, softmax / LayerNorm operation
counts beside the energy, and MAC/AC roles of products."""

import pytest
import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.ann2snn.recipes.spikezip_qann import SpikeZIPLayerNorm, SpikeZIPSoftmax
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import (
    OperationCountMonitor,
    ProductEventMonitor,
    evaluate_over_time,
    product_pairs,
    trace_synapse_roles,
)
from sparse_convert.methods import SpikingNetwork, TimeFold, get_method
from sparse_convert.methods.spikezip import calibrating, quantize_ann
from sparse_convert.models import build_model
from sparse_convert.neurons import SpikeMatMul, STBIFNode
from sparse_convert.topology import random_masks


def _sparse(*shape, density=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * (torch.rand(*shape, generator=g) < density)


def _brute_pairs(a: torch.Tensor, b: torch.Tensor) -> float:
    """Σ over (n, k, m) of [a[n,k] ≠ 0]·[b[k,m] ≠ 0], one synapse-like pair at a time."""
    total = 0
    for idx in torch.cartesian_prod(*(torch.arange(s) for s in a.shape[:-2])).reshape(-1, a.dim() - 2):
        aa, bb = a[tuple(idx)], b[tuple(idx)]
        for n in range(aa.shape[0]):
            for k in range(aa.shape[1]):
                if aa[n, k] != 0:
                    total += int((bb[k] != 0).sum())
    return float(total)


def test_product_pairs_equal_a_brute_force_count_per_step():
    a, b = _sparse(3, 2, 4, 5, seed=1), _sparse(3, 2, 5, 6, seed=2)
    counts = product_pairs(a, b)
    assert counts.dtype == torch.float64 and counts.shape == (3,)
    assert counts.tolist() == [_brute_pairs(a[t:t + 1], b[t:t + 1]) for t in range(3)]
    with pytest.raises(ValueError, match="cannot count the products of shapes"):
        product_pairs(a, _sparse(3, 2, 4, 6))


@pytest.mark.parametrize("chunks", [(6,), (1, 2, 3)])
def test_product_monitor_counts_the_pairs_that_meet_in_each_increment(chunks):
    a_seq, b_seq = _sparse(6, 2, 3, 4, seed=3), _sparse(6, 2, 4, 5, seed=4)
    op = TimeFold(SpikeMatMul())
    monitor = ProductEventMonitor(op)
    t0 = 0
    for k in chunks:
        op.steps = k
        op(a_seq[t0:t0 + k].flatten(0, 1), b_seq[t0:t0 + k].flatten(0, 1))
        t0 += k
    a_cum, b_cum = a_seq.cumsum(0), b_seq.cumsum(0)
    expected = []
    for t in range(6):
        a_prev = a_cum[t - 1] if t else torch.zeros_like(a_seq[0])
        # the increment A_{t−1}·b_t + a_t·B_t: pairs of nonzeros in both products
        expected.append(_brute_pairs(a_prev[None], b_seq[t][None]) + _brute_pairs(a_seq[t][None], b_cum[t][None]))
    assert monitor.per_layer()["node"].tolist() == expected


def test_operation_monitor_counts_elements_of_rows_whose_input_changed():
    ln, softmax = TimeFold(SpikeZIPLayerNorm(nn.LayerNorm(4))), TimeFold(SpikeZIPSoftmax(-1))
    net = nn.ModuleDict({"ln": ln, "sm": softmax})
    monitor = OperationCountMonitor(net)
    x = torch.zeros(3, 2, 5, 4)  # [T, B, rows, 4]
    x[0] = 1.0  # step 0: all 10 rows change
    x[1, 0, 2, 1] = 0.5  # step 1: one row
    ln.steps = softmax.steps = 3
    ln(x.flatten(0, 1))
    softmax(x.flatten(0, 1))
    ops = monitor.per_kind()
    assert ops["layernorm"].tolist() == [40.0, 4.0, 0.0] and ops["softmax"].tolist() == [40.0, 4.0, 0.0]


def test_roles_of_products_follow_their_operands():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = TimeFold(STBIFNode(1.0, -8, 7)), TimeFold(STBIFNode(1.0, -8, 7))
            self.spikes, self.mixed = TimeFold(SpikeMatMul()), TimeFold(SpikeMatMul())

        def forward(self, x):
            a, b = self.a(x), self.b(x)
            return self.spikes(a, b.transpose(-2, -1)) + self.mixed(a, x.transpose(-2, -1))

    net = Net()
    roles = trace_synapse_roles(net, lambda: net(torch.rand(2, 3, 4)), product_types=SpikeMatMul)
    assert roles == {"spikes.node": "ac", "mixed.node": "mac"}


@pytest.fixture(scope="module")
def tiny_vit_snn():
    torch.manual_seed(0)
    ann = build_model("vit_tiny", 10, (1, 8, 8))
    random_masks(ann, 0.7, generator=torch.Generator().manual_seed(0))
    quantize_ann(ann, 8)
    with torch.no_grad(), calibrating(ann):
        ann.eval()(torch.rand(16, 1, 8, 8))
    return get_method("spikezip")().convert(ann)


def test_timeline_adds_product_events_to_macs_and_acs_and_reports_softmax_and_layernorm_apart(tiny_vit_snn):
    data = TensorDataset(torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,)))
    curves = evaluate_over_time(tiny_vit_snn, data, 12, chunk=5, batch_size=3, progress=False)
    products = {n: r for n, r in curves.roles.items() if n.endswith((".qk.node", ".av.node"))}
    assert len(products) == 4 and set(products.values()) == {"ac"}
    assert curves.roles["body.patch_embed.proj.0.0"] == "mac"  # the analog image at step 0
    assert set(curves.roles.values()) == {"mac", "ac"} and list(curves.roles.values()).count("mac") == 1
    assert all(curves.layer_events[n] > 0 for n in products)
    # ACs at t_max are the synaptic and product events together; energy prices MACs and ACs only
    assert curves.ac[-1] == pytest.approx(sum(v for n, v in curves.layer_events.items() if curves.roles[n] == "ac"))
    for m, a, e in zip(curves.mac, curves.ac, curves.energy_uj):
        assert e == pytest.approx((4.6 * m + 0.9 * a) * 1e-6)
    assert set(curves.other_ops) == {"softmax", "layernorm"}
    for values in curves.other_ops.values():
        assert len(values) == 12 and values[0] > 0 and values == sorted(values)
    assert curves.per_step()["softmax_ops"] == curves.other_ops["softmax"]
    # the analog input enters at step 0 only: no MACs afterwards
    assert curves.mac[0] > 0 and curves.mac[-1] == curves.mac[0]


def test_product_events_equal_a_recount_from_recorded_operands(tiny_vit_snn):
    """The monitor's count on the real attention equals pairs counted from operands recorded independently."""
    x = torch.rand(2, 1, 8, 8)
    functional.reset_net(tiny_vit_snn)
    qk = tiny_vit_snn.body.blocks[0].attn.qk.node
    seen = []
    hook = qk.register_forward_pre_hook(lambda mod, args: seen.append(tuple(a.clone() for a in args)))
    monitor = ProductEventMonitor(tiny_vit_snn)
    with torch.no_grad():
        for fold in tiny_vit_snn.folds():
            fold.steps = 6
        tiny_vit_snn(tiny_vit_snn.encoder.encode(x, 0, 6))
    hook.remove()
    (a_seq, b_seq), = seen
    a_prev = torch.cat([torch.zeros_like(a_seq[:1]), a_seq.cumsum(0)[:-1]])
    expected = product_pairs(a_prev, b_seq) + product_pairs(a_seq, b_seq.cumsum(0))
    assert torch.equal(monitor.per_layer()["body.blocks.0.attn.qk.node"], expected)
    functional.reset_net(tiny_vit_snn)


def test_mlp_timelines_keep_their_shape_without_transformer_operators():
    net = SpikingNetwork(nn.Sequential(nn.Linear(2, 2), TimeFold(STBIFNode(1.0, 0, 3)), nn.Linear(2, 2)))
    curves = evaluate_over_time(net, TensorDataset(torch.rand(2, 2), torch.tensor([0, 1])), 4, progress=False)
    assert curves.other_ops == {} and set(curves.per_step()) == {"t", "accuracy", "masfr", "mac", "ac", "energy_uj"}
