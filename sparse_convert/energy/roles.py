"""Which synaptic layers do MACs and which do ACs, found from where their input comes from.

A layer does ACs when its input was emitted by a spike source (a spiking node, or an
encoder that emits spikes such as SpikingJelly's ``PoissonEncoder``), directly or through
modules that only reshape, pool or scale spikes (Flatten, Dropout, AvgPool, SpikingJelly's
``VoltageScaler`` that ``ann2snn.Converter`` puts after each IF node, ...); otherwise its
input is analog (the encoded image, a non-spiking layer's output) and it does MACs. The
decision follows the data, not the values: SpikingJelly's value test ("all entries in
{0, 1}") calls signed and scaled spikes MACs. Untraceable inputs default to MAC, which
never under-reports energy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from spikingjelly.activation_based import encoding, neuron
from spikingjelly.activation_based.ann2snn.modules import ChannelVoltageScaler, VoltageScaler
from torch import Tensor, nn

from ..neurons.spike_ops import SpikeMatMul
from .events import is_counted

#: Modules that multiply two activations (attention's QKᵀ and AV in the SNN).
PRODUCT_TYPES: tuple[type[nn.Module], ...] = (SpikeMatMul,)

MAC, AC = "mac", "ac"

#: Modules whose output is made of their input's spikes (spikes in → spikes out): shape-only,
#: pooling, and scaling by a constant (SpikingJelly's ``layer.*`` versions subclass these).
PASSIVE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout,
    nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.MaxPool1d, nn.MaxPool2d,
    VoltageScaler, ChannelVoltageScaler,
)

#: Spiking neurons: the nodes whose spikes make the firing rate.
NODE_TYPES: tuple[type[nn.Module], ...] = (neuron.BaseNode, neuron.STBIFNode, neuron.ActivationAwareIFNode)

#: Modules whose output is spikes (0/1, signed or scaled by a threshold): nodes and spike encoders.
SPIKING_TYPES: tuple[type[nn.Module], ...] = (
    *NODE_TYPES,
    encoding.PoissonEncoder, encoding.LatencyEncoder, encoding.PeriodicEncoder, encoding.WeightedPhaseEncoder,
    encoding.PopSpikeEncoderDeterministic, encoding.PopSpikeEncoderRandom,
)

#: ``BaseNode`` subclasses whose output is analog (an activation of the membrane), not spikes.
ANALOG_NODE_TYPES: tuple[type[nn.Module], ...] = (neuron.LIAFNode,)


def is_spike_source(module: nn.Module, spiking_types: type | tuple[type, ...] = SPIKING_TYPES) -> bool:
    """Whether ``module``'s output is spikes (an analog-output node such as ``LIAFNode`` is not)."""
    return isinstance(module, spiking_types) and not isinstance(module, ANALOG_NODE_TYPES)


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


@torch.no_grad()
def trace_synapse_roles(
    net: nn.Module,
    run: Callable[[], object],
    *,
    input_spikes: Tensor | None = None,
    spiking_types: type | tuple[type, ...] = SPIKING_TYPES,
    product_types: type | tuple[type, ...] = PRODUCT_TYPES,
) -> dict[str, str]:
    """``{layer name: "mac" | "ac"}`` for every synaptic layer and ``product_types`` module that ``run()`` calls.

    ``run`` performs one forward pass of ``net``; pass its input as ``input_spikes`` when
    the network is fed spikes from outside (an encoder that emits spikes; a spike encoder
    inside ``net`` is found by itself). A product of two activations does ACs when both
    operands come from spike sources, MACs otherwise.
    """
    spike_storages: set[int] = set()
    keep: list[Tensor] = []  # holding references keeps storages from being reused mid-trace
    roles: dict[str, str] = {}

    def mark(t: Tensor) -> None:
        keep.append(t)
        spike_storages.add(_storage(t))

    if input_spikes is not None:
        mark(input_spikes)
    hooks = []
    for name, m in net.named_modules():
        if is_spike_source(m, spiking_types):
            hooks.append(m.register_forward_hook(lambda mod, a, out: mark(out[0] if isinstance(out, tuple) else out)))
        elif isinstance(m, PASSIVE_TYPES):
            def passive(mod, args, out):
                if _storage(args[0]) in spike_storages:
                    mark(out)
            hooks.append(m.register_forward_hook(passive))
        elif is_counted(m) or isinstance(m, product_types):
            def synaptic(mod, args, name=name):  # a layer's one input, or a product's two operands
                role = AC if all(_storage(x) in spike_storages for x in args) else MAC
                roles[name] = MAC if roles.get(name) == MAC else role
            hooks.append(m.register_forward_pre_hook(synaptic))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return roles
