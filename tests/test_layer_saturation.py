"""Per-layer firing-rate curves (each spiking layer's own MASFR), their saturation times, the tests of
§3.3's explanation (the output layer's rate stabilises after the model average) and their figure."""

import numpy as np
import pytest
import torch
from scipy import stats
from synthetic_results import make_result, ramp_curve
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.analysis.figures import layer_saturation_figure
from sparse_convert.analysis.report import build_report
from sparse_convert.analysis.saturation import result_saturation, saturation_block, saturation_time
from sparse_convert.analysis.statistics import layer_saturation_sample, output_layer_tests
from sparse_convert.energy import evaluate_over_time
from sparse_convert.methods import SpikingNetwork, TimeFold
from sparse_convert.neurons import CSQCFSNode, inverse_softplus


def two_layer_network() -> SpikingNetwork:
    """Linear 2→2 → IF (2 neurons) → Linear 2→3 → IF (3 neurons) → Linear 3→2, fixed weights."""
    torch.manual_seed(0)
    a, b, c = nn.Linear(2, 2), nn.Linear(2, 3), nn.Linear(3, 2)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[0.6, 0.1], [0.2, 0.3]]))
        b.weight.copy_(torch.tensor([[0.9, 0.0], [0.4, 0.5], [0.0, 0.7]]))
        for layer in (a, b, c):
            layer.bias.zero_()
    return SpikingNetwork(nn.Sequential(a, TimeFold(CSQCFSNode(inverse_softplus(torch.ones(2)))), b,
                                        TimeFold(CSQCFSNode(inverse_softplus(torch.ones(3)))), c))


DATA = TensorDataset(torch.tensor([[0.5, 0.2], [0.1, 0.9], [0.7, 0.7]]), torch.tensor([0, 1, 0]))


def _spikes_by_hand(net: SpikingNetwork, t_max: int) -> dict[str, np.ndarray]:
    """Spikes per step of each node on all of DATA at once, counted by our own hooks: ``[t_max]`` per node."""
    counts: dict[str, list] = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=name: counts.setdefault(n, []).append(
        (o != 0).flatten(1).sum(1).double().numpy())) for name, m in net.named_modules() if isinstance(m, CSQCFSNode)]
    with torch.no_grad():
        net(net.encoder.encode(DATA.tensors[0], 0, t_max))
    for h in hooks:
        h.remove()
    return {name: np.concatenate(v) for name, v in counts.items()}


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_layer_curves_are_each_layers_own_rate_and_their_weighted_mean_is_masfr(chunk):
    t_max = 16
    curves = evaluate_over_time(two_layer_network(), DATA, t_max, chunk=chunk, batch_size=2, progress=False)
    assert list(curves.layer_masfr) == ["body.1.node", "body.3.node"]  # depth order
    assert curves.layer_neurons == {"body.1.node": 2, "body.3.node": 3} and curves.neurons == 5
    by_hand = _spikes_by_hand(two_layer_network(), t_max)
    steps = np.arange(1, t_max + 1)
    for name, per_step in by_hand.items():
        n = curves.layer_neurons[name]
        assert curves.layer_masfr[name] == pytest.approx(np.cumsum(per_step) / (steps * n * 3))
    assert sum(by_hand["body.3.node"]) > 0  # the deep layer does fire, so the check is not vacuous
    weighted = sum(curves.layer_neurons[n] * np.array(v) for n, v in curves.layer_masfr.items()) / curves.neurons
    assert weighted == pytest.approx(curves.masfr, rel=1e-12, abs=1e-15)  # at every t
    block = curves.per_layer()
    assert [(v["depth"], v["neurons"]) for v in block.values()] == [(1, 2), (2, 3)]


def test_the_saturation_block_gives_each_layer_its_saturation_time():
    layers = {"a": ramp_curve(40, 5, 0.01, 0.2), "b": ramp_curve(40, 9, 0.01, 0.2), "c": [0.1 * 1.05**t for t in
                                                                                         range(40)]}
    block = saturation_block(ramp_curve(40, 12, 0.1, 0.9), ramp_curve(40, 7, 0.01, 0.2), layers=layers)
    assert {k: v["t"] for k, v in block["layers"].items()} == {"a": 5, "b": 9, "c": None}
    assert block["layers"]["a"] == saturation_time(layers["a"]).to_dict()
    assert "layers" not in saturation_block([0.5] * 20, [0.1] * 20)


def with_layers(result: dict, *layer_t: int | None) -> dict:
    """``result`` with one spiking layer of 10 neurons per entry of ``layer_t``, saturating there."""
    t_max = result["config"]["t_max"]
    result["per_layer"] = {
        f"body.{2 * d}.node": {"depth": d, "neurons": 10,
                               "masfr": ramp_curve(t_max, t, 0.01, 0.2) if t else [0.2 * 1.05**s / 1.05**t_max
                                                                                  for s in range(1, t_max + 1)]}
        for d, t in enumerate(layer_t, start=1)}
    return result


def test_layer_sample_and_the_output_layer_tests_match_scipy():
    runs = [with_layers(make_result(seed=s, acc_t=12, masfr_t=5), 3, 6, 9 + s) for s in range(4)]
    runs += [with_layers(make_result(sparsity=0.9, seed=s, acc_t=14 + s, masfr_t=5), 4, 4 + s, 8 + 2 * s)
             for s in range(4)]
    runs += [with_layers(make_result(seed=9), 3, None, 7),  # a layer never saturates
             make_result(seed=10),  # no per-layer curves (an older result)
             make_result(method="aec")]
    sample = layer_saturation_sample(runs)
    assert len(sample.runs) == 8 and sample.excluded_window == 1 and sample.excluded_no_layers == 1
    assert len(sample.unsaturated_runs) == 1
    assert result_saturation(runs[0])["layers"]["body.6.node"]["t"] == 9
    tests = output_layer_tests(sample)
    out = [r.output_t for r in sample.runs]
    assert out == [9, 10, 11, 12, 8, 10, 12, 14]
    expected = stats.wilcoxon(out, [r.masfr_t for r in sample.runs], alternative="greater")
    assert tests["output_after_masfr"].p_value == pytest.approx(expected.pvalue)
    assert tests["output_after_masfr"].effect_size == 1.0
    assert tests["output_last"].n == 8 and tests["output_last"].effect_size == 1.0
    acc = [r.accuracy_t for r in sample.runs]
    assert tests["accuracy_vs_output"].p_value == pytest.approx(stats.wilcoxon(acc, out).pvalue)
    page = stats.page_trend_test([list(r.layers_t) for r in sample.runs])
    assert tests["depth_trend"].p_value == pytest.approx(page.pvalue) and tests["depth_trend"].depths == 3
    assert tests["depth_trend"].mean_spearman == pytest.approx(np.mean([1.0] * 4 + [0.866025403784] + [1.0] * 3))
    assert isinstance(output_layer_tests(sample, sparse=True)["output_after_masfr"].p_value, float)


def test_the_layer_figure_and_report_section():
    runs = [with_layers(make_result(seed=s, acc_t=12, masfr_t=5), 3, 6, 9) for s in range(3)]
    runs += [with_layers(make_result(sparsity=0.9, seed=s, acc_t=15, masfr_t=5), 4, 11, 8) for s in range(3)]
    fig = layer_saturation_figure(runs)
    dense, sparse = fig.axes[:2]
    assert dense.get_title() == "dense SNNs (n = 3; deepest layer last in 3)"
    assert sparse.get_title() == "sparse SNNs (n = 3; deepest layer last in 0)"
    assert [t.get_text() for t in dense.get_xticklabels()] == ["layer 1", "layer 2", "layer 3", "MASFR", "accuracy"]
    report = build_report(runs)
    section = report.markdown.split("## Saturation by layer depth", 1)[1]
    assert "![layer_saturation](layer_saturation.png)" in section and "layer_saturation" in report.figures
    assert "| dense | 3 | 3.00 | 6.00 | 9.00 | 5.00 | 12.00 | 3 | 3 |" in section
    assert "Page's L" in section
    with pytest.raises(ValueError, match="1 without per-layer curves or with one spiking layer"):
        layer_saturation_figure([make_result()])
