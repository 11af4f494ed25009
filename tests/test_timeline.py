"""Accuracy, MASFR and events at every step, on a network worked out by hand."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import EnergyModel, evaluate_over_time
from sparse_convert.methods import SpikingNetwork, TimeFold
from sparse_convert.neurons import CSQCFSNode, inverse_softplus


def hand_network() -> SpikingNetwork:
    """Identity Linear → IF (θ = 1, v0 = 1/2) → identity Linear."""
    first, last = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.eye(2))
        last.weight.copy_(torch.eye(2))
    node = CSQCFSNode(inverse_softplus(torch.ones(2)))
    return SpikingNetwork(nn.Sequential(first, TimeFold(node), last))


# image 0 = [0.5, 0], label 0: neuron 0 reaches θ at t = 1, 3, 5, ... (v: .5 → 1 → fire → 0 → .5 → 1 ...)
# image 1 = [0, 0.25], label 1: neuron 1 reaches θ at t = 2, 6, 10, ...
DATA = TensorDataset(torch.tensor([[0.5, 0.0], [0.0, 0.25]]), torch.tensor([0, 1]))


def spikes_at(t: int) -> int:
    return int(t % 2 == 1) + int(t % 4 == 2)


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_hand_worked_curves(chunk):
    curves = evaluate_over_time(hand_network(), DATA, 8, chunk=chunk, progress=False)
    assert curves.t == list(range(1, 9))
    # image 1 has no output before its first spike at t = 2 (argmax of [0, 0] is class 0)
    assert curves.accuracy == [0.5] + [1.0] * 7
    assert curves.neurons == 2 and curves.images == 2
    cumulative = 0
    for t in range(1, 9):
        cumulative += spikes_at(t)
        assert curves.masfr[t - 1] == pytest.approx(cumulative / (t * 2 * 2))
        # one nonzero pixel per image reaches one weight each step (MAC); each spike one weight (AC)
        assert curves.mac[t - 1] == pytest.approx(t)
        assert curves.ac[t - 1] == pytest.approx(cumulative / 2)
        assert curves.energy_uj[t - 1] == pytest.approx((4.6 * t + 0.9 * cumulative / 2) * 1e-6)
    assert curves.roles == {"body.0": "mac", "body.2": "ac"}


def test_energy_model_is_configurable():
    curves = evaluate_over_time(hand_network(), DATA, 4, energy=EnergyModel(e_mac_pj=1.0, e_ac_pj=0.0),
                                progress=False)
    assert curves.energy_uj == pytest.approx([t * 1e-6 for t in range(1, 5)])
    with pytest.raises(ValueError, match="e_ac_pj"):
        EnergyModel(e_ac_pj=float("nan"))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="t_max"):
        evaluate_over_time(hand_network(), DATA, 0, progress=False)
    nan_data = TensorDataset(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_over_time(hand_network(), nan_data, 4, progress=False)
