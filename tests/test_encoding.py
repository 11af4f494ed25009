"""Input encoders: every encoder of the package is an ``Encoder``, and the energy counter refuses anything else."""

import ast
from pathlib import Path

import pytest
import torch
from test_timeline import DATA, hand_network
from torch import nn

import sparse_convert
from sparse_convert.encoding import DirectEncoder, Encoder, FirstStepEncoder
from sparse_convert.energy import evaluate_over_time
from sparse_convert.energy.neurobench import NeuroBenchSNN, neurobench_over_time
from sparse_convert.energy.timeline import _encoder_of
from sparse_convert.neurons import AECEncoder
from sparse_convert.neurons.aec import INITS

ENCODERS = {
    DirectEncoder: DirectEncoder,
    FirstStepEncoder: FirstStepEncoder,
    AECEncoder: lambda: AECEncoder(INITS["cifar10"], 4),
}


def _encoder_classes_in_the_package() -> set[str]:
    """Names of the classes called ``...Encoder`` defined anywhere in ``sparse_convert`` (read, not imported)."""
    names = set()
    for path in Path(sparse_convert.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Encoder") and node.name != "Encoder":
                names.add(node.name)
    return names


def test_every_encoder_of_the_package_is_an_encoder():
    assert _encoder_classes_in_the_package() == {cls.__name__ for cls in ENCODERS}, "add new encoders to ENCODERS"
    x = torch.rand(3, 2, 4)
    for cls, make in ENCODERS.items():
        encoder = make()
        assert isinstance(encoder, Encoder) and Encoder in cls.__mro__, cls.__name__
        assert isinstance(encoder.emits_spikes, bool)
        assert encoder.encode(x, 0, 5).shape == (5, *x.shape)
        assert encoder.encode(x, 2, 1).shape == (1, *x.shape)
    assert AECEncoder.emits_spikes and not DirectEncoder.emits_spikes and not FirstStepEncoder.emits_spikes


class _NotAnEncoder:
    def encode(self, x, t0, steps):  # no emits_spikes
        return x.expand(steps, *x.shape)


class _DuckEncoder:
    """Direct encoding written without subclassing ``Encoder``: the protocol takes it all the same."""

    emits_spikes = False

    def encode(self, x, t0, steps):
        return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


@pytest.mark.parametrize("bad", [object(), _NotAnEncoder(), "direct", DirectEncoder])
def test_an_object_that_is_not_an_encoder_is_refused(bad):
    with pytest.raises(TypeError, match=r"encoder must be an Encoder .*emits_spikes"):
        _encoder_of(hand_network(), bad)
    with pytest.raises(TypeError, match="encoder must be an Encoder"):
        evaluate_over_time(hand_network(), DATA, 2, encoder=bad, progress=False)
    with pytest.raises(TypeError, match="encoder must be an Encoder"):
        neurobench_over_time(hand_network(), DATA, 2, encoder=bad)
    with pytest.raises(TypeError, match="encoder must be an Encoder"):
        NeuroBenchSNN(hand_network(), 2, encoder=bad)


def test_a_network_whose_own_encoder_is_not_an_encoder_is_refused():
    net = nn.Sequential(nn.Linear(2, 2))
    net.encoder = _NotAnEncoder()
    with pytest.raises(TypeError, match=r"Sequential\.encoder must be an Encoder"):
        _encoder_of(net, None)
    with pytest.raises(TypeError, match=r"Sequential\.encoder must be an Encoder"):
        evaluate_over_time(net, DATA, 2, progress=False)


def test_the_encoder_is_the_given_one_else_the_networks_else_direct():
    given, own = FirstStepEncoder(), FirstStepEncoder()
    net = hand_network()
    net.encoder = own
    assert _encoder_of(net, given) is given
    assert _encoder_of(net, None) is own
    assert isinstance(_encoder_of(nn.Sequential(nn.Linear(2, 2)), None), DirectEncoder)


def test_a_duck_typed_encoder_counts_like_the_same_package_encoder():
    assert isinstance(_DuckEncoder(), Encoder)
    duck = evaluate_over_time(hand_network(), DATA, 6, chunk=4, encoder=_DuckEncoder(), progress=False)
    assert duck.to_dict() == evaluate_over_time(hand_network(), DATA, 6, chunk=4, progress=False).to_dict()
