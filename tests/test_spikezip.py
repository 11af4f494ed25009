"""SpikeZIP-TF: the LSQ quantizer, the ST-BIF+ node, the spike-equivalent operators, and a tiny ViT SNN
against its quantized ANN."""

import copy
import math

import pytest
import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.ann2snn.recipes.spikezip_qann import (
    SpikeZIPLayerNorm,
    SpikeZIPSoftmax,
    _matmul_delta,
)
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.data import DataSplits, load_dataset
from sparse_convert.methods import MethodContext, TimeFold, get_method
from sparse_convert.methods.spikezip import QuantAttention, calibrating, quantize_ann
from sparse_convert.models import build_model
from sparse_convert.neurons import (
    LSQQuantizer,
    MatMul,
    SpikeMatMul,
    STBIFNode,
    level_bounds,
    set_backend,
)
from sparse_convert.topology import get_mask, masked_layers, output_layer_name, random_masks

# -- the quantizer --------------------------------------------------------------------------------------------


def test_level_bounds_signed_and_unsigned():
    assert level_bounds(16, signed=True) == (-8, 7)
    assert level_bounds(16, signed=False) == (0, 15)
    with pytest.raises(ValueError, match="levels .* >= 2, got 1"):
        level_bounds(1, signed=False)


@pytest.mark.parametrize("levels", range(2, 18))
def test_signed_levels_are_the_reference_range_with_levels_values(levels):
    # the reference: neg_min = -L//2 (Python floor division of -L), pos_max = L//2 - 1
    n, p = level_bounds(levels, signed=True)
    assert (n, p) == ((-levels) // 2, levels // 2 - 1)
    assert p - n + 1 == levels and n <= 0 <= p
    assert level_bounds(levels, signed=False) == (0, levels - 1)


def test_five_signed_levels_reach_minus_three_to_one_in_the_quantizer_and_the_node():
    q = LSQQuantizer(5, signed=True, step=0.5).double()
    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    steps = q(x).detach() / q.step.detach().double()
    torch.testing.assert_close(steps, steps.round(), rtol=0, atol=1e-12)
    assert torch.unique(steps.round()).tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0]
    node = STBIFNode.from_quantizer(q).double()
    assert (int(node.neg_min), int(node.pos_max)) == (-3, 1)
    out = node(torch.cat([x[None], torch.zeros(12, 601, dtype=torch.float64)]))
    torch.testing.assert_close(out.sum(0), q(x).detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("levels", [2, 3])
def test_a_signed_quantizer_without_a_positive_level_is_refused_clearly(levels):
    with pytest.raises(ValueError, match=rf"levels \(L\) >= 4, got {levels}: its range \[-\d, 0\]"):
        LSQQuantizer(levels, signed=True)
    LSQQuantizer(levels, signed=False)  # a quantized ReLU with L levels is fine
    node = STBIFNode(1.0, *level_bounds(levels, signed=True))  # the node itself can hold that range
    x = torch.zeros(6, 1, 2)
    x[0, 0] = torch.tensor([-5.0, 3.0])
    n, _ = level_bounds(levels, signed=True)
    assert node(x).sum(0).flatten().tolist() == [float(n), 0.0]  # clamp(floor(X/θ + 1/2), n, 0)


def test_quantizer_hand_computed_values():
    x = torch.tensor([-2.0, -0.76, -0.74, -0.2, 0.24, 0.25, 0.6, 3.0])
    # x/s + 1/2 with s = 0.5: [-3.5, -1.02, -0.98, 0.1, 0.98, 1.0, 1.7, 6.5] → floor → clamp → × s
    signed = LSQQuantizer(4, signed=True, step=0.5)  # integers in [-2, 1]
    torch.testing.assert_close(signed(x), torch.tensor([-1.0, -1.0, -0.5, 0.0, 0.0, 0.5, 0.5, 0.5]))
    unsigned = LSQQuantizer(4, signed=False, step=0.5)  # [0, 3]: a quantized ReLU
    torch.testing.assert_close(unsigned(x), torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 1.5]))
    with pytest.raises(ValueError, match="step s must be .* > 0, got -1"):
        LSQQuantizer(4, signed=True, step=-1.0)


def test_quantizer_gradients_are_straight_through_and_lsq_for_the_step():
    q = LSQQuantizer(4, signed=True, step=0.5)
    x = torch.tensor([-3.0, -0.3, 2.0], requires_grad=True)
    q(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 0.0]))  # clamped at -2·s and 1·s
    # LSQ: d/ds = (round(x/s) − x/s) inside, the bound outside; scaled by 1/sqrt(p · numel)
    d_step = (-2.0 + (-1.0 + 0.6) + 1.0) / math.sqrt(1 * 3)
    assert q.log_step.grad.item() == pytest.approx(0.5 * d_step)  # stored as log s: d/dlog s = s · d/ds


def test_calibration_sets_lsq_initial_step():
    q = LSQQuantizer(16, signed=True)
    x = torch.tensor([[-1.0, 3.0], [0.5, -1.5]])
    with calibrating(nn.Sequential(q)):
        q(x)
    assert q.step.item() == pytest.approx(2 * 1.5 / math.sqrt(7))
    assert not q.calibrating


def test_calibration_over_several_batches_uses_all_of_them():
    q = LSQQuantizer(16, signed=True)
    with calibrating(nn.Sequential(q)):
        q(torch.tensor([[-1.0, 3.0], [0.5, -1.5]]))  # mean |x| 1.5
        q(torch.tensor([[4.5, -4.5]]))  # mean |x| 4.5: over all six values 2.5
    assert q.step.item() == pytest.approx(2 * 2.5 / math.sqrt(7))


# -- the ST-BIF+ node ------------------------------------------------------------------------------------------


def test_stbif_hand_worked_sequence():
    node = STBIFNode(1.0, neg_min=-2, pos_max=1)
    x = torch.tensor([0.7, 0.0, -1.5, 0.0, 0.0, 5.0, 0.0, 0.0]).reshape(8, 1, 1)
    out = node(x).flatten()
    # q: .5 → 1.2 fire (+1) .2 | .2 | −1.3 fire (−1) −.3 | fire (−1) .7 | .7 | 5.7 fire | 4.7 fire | 3.7 at bound
    torch.testing.assert_close(out, torch.tensor([1.0, 0.0, -1.0, -1.0, 0.0, 1.0, 1.0, 0.0]))
    assert node.count.item() == 1.0 and node.accumulated.item() == 1.0
    functional.reset_net(node)
    assert not torch.is_tensor(node.count)


@pytest.mark.parametrize("signed", [True, False])
def test_stbif_settles_to_the_quantizer_output_for_any_split_of_the_input(signed):
    g = torch.Generator().manual_seed(int(signed))
    quant = LSQQuantizer(8, signed=signed, step=0.3).double()
    total = torch.randn(500, generator=g, dtype=torch.float64) * 1.5
    parts = torch.rand(5, 500, generator=g, dtype=torch.float64)
    x_seq = torch.cat([total * parts / parts.sum(0), torch.zeros(2 * 8, 500, dtype=torch.float64)])
    node = STBIFNode.from_quantizer(quant).double()
    out = node(x_seq)
    torch.testing.assert_close(out.sum(0), quant(total).detach(), rtol=0, atol=1e-12)
    spikes = out / node.threshold
    assert ((spikes == 0) | (spikes.abs() == 1)).all()  # ternary
    counts = spikes.cumsum(0)
    assert counts.min() >= quant.neg_min and counts.max() <= quant.pos_max


def test_stbif_multi_step_equals_spikingjelly_transition_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    node = STBIFNode(0.25, neg_min=-8, pos_max=7)
    x = torch.randn(12, 4, 33, generator=g)
    (ours,), (q, count) = node.torch_multi_step((x,), (torch.full_like(x[0], 0.5), torch.zeros_like(x[0])))
    ref, q_ref, count_ref, _ = functional.stbif_multi_step(x, torch.full_like(x[0], 0.5), torch.zeros_like(x[0]),
                                                         node.threshold, node.pos_max, node.neg_min)
    assert torch.equal(ours, ref) and torch.equal(q, q_ref) and torch.equal(count, count_ref)
    node.step_mode = "s"
    single = torch.stack([node(x[t]) for t in range(12)])
    assert torch.equal(single, ref)


def test_set_backend_reaches_stbif_nodes():
    net = nn.Sequential(TimeFold(STBIFNode(1.0, -8, 7)), TimeFold(STBIFNode(1.0, 0, 15)))
    assert set_backend(net, "torch") == 2


# -- spike-equivalent operators --------------------------------------------------------------------------------


def _chunked(module: nn.Module, *seqs: torch.Tensor, chunks=(3, 5)) -> torch.Tensor:
    """Run a TimeFold-wrapped module on [T, B, ...] sequences in chunks of steps, as the timeline does."""
    outs, t0 = [], 0
    for k in chunks:
        module.steps = k
        outs.append(module(*(s[t0:t0 + k].flatten(0, 1) for s in seqs)).unflatten(0, (k, -1)))
        t0 += k
    return torch.cat(outs)


def test_spike_softmax_sums_to_softmax_of_the_summed_input():
    g = torch.Generator().manual_seed(1)
    x_seq = torch.randn(8, 2, 3, 5, 5, generator=g, dtype=torch.float64)
    out = _chunked(TimeFold(SpikeZIPSoftmax(-1)), x_seq)
    for t in range(8):
        torch.testing.assert_close(out[:t + 1].sum(0), x_seq[:t + 1].sum(0).softmax(-1), rtol=0, atol=1e-12)


def test_spike_layernorm_sums_to_layernorm_of_the_summed_input():
    g = torch.Generator().manual_seed(2)
    ln = nn.LayerNorm(6, eps=1e-6).double()
    with torch.no_grad():
        ln.weight.copy_(torch.randn(6, generator=g))
        ln.bias.copy_(torch.randn(6, generator=g))
    x_seq = torch.randn(8, 3, 4, 6, generator=g, dtype=torch.float64)
    out = _chunked(TimeFold(SpikeZIPLayerNorm(ln)), x_seq)
    for t in range(8):
        torch.testing.assert_close(out[:t + 1].sum(0), ln(x_seq[:t + 1].sum(0)), rtol=0, atol=1e-12)


def test_spike_attention_product_increments_sum_to_the_product_and_match_the_reference_form():
    g = torch.Generator().manual_seed(3)
    ternary = lambda *shape: torch.randint(-1, 2, shape, generator=g).double()  # noqa: E731
    a, b = ternary(8, 2, 3, 5, 4) * 0.3, ternary(8, 2, 3, 4, 6) * 0.7  # spikes ±θ of two nodes
    op = TimeFold(SpikeMatMul(scale=0.5))
    out = _chunked(op, a, b)
    a_cum, b_cum = a.cumsum(0), b.cumsum(0)
    for t in range(8):
        torch.testing.assert_close(out[:t + 1].sum(0), 0.5 * a_cum[t] @ b_cum[t], rtol=0, atol=1e-12)
        # SpikeZIP-TF's increment Q_sum·k_t + q_t·K_sum − q_t·k_t (sums include step t), as SpikingJelly writes it
        torch.testing.assert_close(out[t], 0.5 * _matmul_delta(a[t], b[t], a_cum[t], b_cum[t]), rtol=0, atol=1e-12)
    torch.testing.assert_close(MatMul(0.5)(a_cum[-1], b_cum[-1]), out.sum(0), rtol=0, atol=1e-12)


# -- the tiny ViT: QANN and SNN ---------------------------------------------------------------------------------


def _digits_subset(n_train: int = 256) -> DataSplits:
    data = load_dataset("digits")
    train = TensorDataset(*(t[:n_train] for t in data.train.tensors))
    return DataSplits("digits", train, data.val, data.test, data.num_classes, data.in_shape)


@pytest.fixture(scope="module")
def tiny_vit_qann():
    """A tiny ViT with 70 %-sparse masks, briefly trained as a SpikeZIP-TF QANN; returns (ann, qann, data)."""
    torch.manual_seed(0)
    data = _digits_subset()
    ann = build_model("vit_tiny", 10, data.in_shape)
    random_masks(ann, 0.7, generator=torch.Generator().manual_seed(0))
    method = get_method("spikezip")(levels=8, epochs=2, lr=3e-3)
    qann = method.prepare(copy.deepcopy(ann), MethodContext(data, progress=False))
    return ann, qann, data


def _quantizer_outputs(qann: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The QANN's logits and every quantizer's output, by name."""
    found = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, name=name: found.__setitem__(name, out.detach()))
             for name, m in qann.named_modules() if isinstance(m, LSQQuantizer)]
    try:
        logits = qann.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return {"logits": logits.detach(), **found}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("softmax", [True, False])
def test_snn_output_summed_over_steps_equals_the_qann_output_for_every_token_and_class(tiny_vit_qann, softmax, dtype):
    """In float64 every quantized activation matches exactly. In float32 the SNN sums its inputs in another
    order than the QANN, so an input within float rounding of a level boundary can land one level
    apart (a tie); the logits must still match, and such entries must be rare."""
    _, qann, data = tiny_vit_qann
    qann = copy.deepcopy(qann).to(dtype)
    if not softmax:  # ReLU attention: the same trained weights, quantizers re-calibrated
        for m in qann.modules():
            if isinstance(m, QuantAttention):
                m.softmax_enabled, m.softmax = False, nn.Identity()
        with torch.no_grad(), calibrating(qann):
            qann.eval()(data.train.tensors[0][:64].to(dtype))
    x = data.test.tensors[0][:48].to(dtype)
    expected, snn, total = _run_snn(qann, x)
    torch.testing.assert_close(total, expected["logits"], rtol=1e-5, atol=1e-5)
    nodes = {n[:-len(".node")]: m for n, m in snn.body.named_modules() if isinstance(m, STBIFNode)}
    assert set(nodes) == set(expected) - {"logits"}
    for name, node in nodes.items():  # every token of every quantized activation, attention maps included
        assert node.accumulated.dtype == dtype
        if dtype == torch.float64:
            torch.testing.assert_close(node.accumulated, expected[name], rtol=1e-9, atol=1e-9, msg=name)
        else:
            off = int(((node.accumulated - expected[name]).abs() > 1e-5).sum())
            assert off <= expected[name].numel() // 1000, f"{name}: {off} of {expected[name].numel()} entries differ"


def _run_snn(qann: nn.Module, x: torch.Tensor):
    """The QANN's quantizer outputs on ``x``, its SNN, and the SNN's output summed over 48 steps."""
    with torch.no_grad():
        expected = _quantizer_outputs(qann, x)
        snn = get_method("spikezip")().convert(qann)
        functional.reset_net(snn)
        return expected, snn, snn(snn.encoder.encode(x, 0, 48)).sum(0)


def test_snn_equals_the_qann_with_an_odd_number_of_levels(tiny_vit_qann):
    """L = 5: signed quantizers on [−3, 1], unsigned on [0, 4]; every ST-BIF+ node settles to its quantizer."""
    _, qann, data = tiny_vit_qann
    qann = copy.deepcopy(qann).double()
    for m in qann.modules():
        if isinstance(m, LSQQuantizer):
            m.levels = 5
            m.neg_min, m.pos_max = level_bounds(5, m.signed)
    with torch.no_grad(), calibrating(qann):
        qann.eval()(data.train.tensors[0][:64].double())
    x = data.test.tensors[0][:24].double()
    expected, snn, total = _run_snn(qann, x)
    torch.testing.assert_close(total, expected["logits"], rtol=1e-9, atol=1e-9)
    nodes = {n[:-len(".node")]: m for n, m in snn.body.named_modules() if isinstance(m, STBIFNode)}
    signed_seen = False
    for name, node in nodes.items():
        torch.testing.assert_close(node.accumulated, expected[name], rtol=1e-9, atol=1e-9, msg=name)
        counts = (node.accumulated / node.threshold).round()
        if int(node.neg_min) < 0:
            assert int(node.neg_min) == -3 and int(node.pos_max) == 1
            signed_seen = signed_seen or bool((counts == -3).any())
        else:
            assert int(node.pos_max) == 4
    assert signed_seen  # the third negative level is used


def test_masked_weights_stay_zero_through_qat_and_the_classifier_stays_dense(tiny_vit_qann):
    ann, qann, _ = tiny_vit_qann
    layers = masked_layers(qann)
    assert len(layers) == len(masked_layers(ann)) > 0
    for name, layer in layers.items():
        mask = get_mask(layer)
        assert mask.float().mean().item() == pytest.approx(0.3, abs=0.01)
        assert (layer.weight[~mask] == 0).all(), name
    head = qann.get_submodule(output_layer_name(qann))
    assert get_mask(head) is None and (head.weight != 0).all()
    before = dict(ann.named_parameters())
    trained = dict(qann.named_parameters())
    assert not torch.equal(before["blocks.0.mlp.fc1.weight"], trained["blocks.0.mlp.fc1.weight"])


def test_qann_places_quantizers_as_the_reference_does(tiny_vit_qann):
    _, qann, _ = tiny_vit_qann
    signed = {n: q.signed for n, q in qann.named_modules() if isinstance(q, LSQQuantizer)}
    block = "blocks.0."
    assert signed[block + "norm1.1"] and signed[block + "norm2.1"] and signed["norm.1"]
    assert signed["patch_embed.proj.1"] and signed[block + "mlp.fc2.1"] and signed[block + "attn.quant_proj"]
    assert all(signed[block + f"attn.quant_{k}"] for k in ("q", "k", "v", "out"))
    assert not signed[block + "attn.quant_attn"] and not signed[block + "mlp.act"]  # quantized ReLUs
    assert not any(isinstance(m, (nn.GELU, nn.ReLU)) for m in qann.modules())
    assert len(signed) == 2 + 2 * 10


def test_conversion_refuses_what_it_cannot_convert():
    method = get_method("spikezip")()
    with pytest.raises(ValueError, match="run SpikeZIP.prepare first"):
        method.convert(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no window"):
        method.convert(nn.Sequential(LSQQuantizer(4, True)), window=4)
    with pytest.raises(ValueError, match="no spike-equivalent for \\['SiLU'\\]"):
        quantize_ann(nn.Sequential(nn.Linear(2, 2), nn.SiLU()), 8)
    with pytest.raises(ValueError, match="levels"):
        get_method("spikezip")(levels=1)
