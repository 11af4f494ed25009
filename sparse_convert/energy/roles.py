"""Which synaptic layers do MACs and which do ACs, found from where their input comes from.

A layer does ACs when its input was emitted by a spiking node, directly or through
shape-only and pooling modules (Flatten, Dropout, AvgPool, ...); otherwise its input is
analog (the encoded image, a non-spiking layer's output) and it does MACs. The decision
follows the data, not the values: SpikingJelly's value test ("all entries in {0, 1}")
calls signed and scaled spikes MACs. Untraceable inputs default to MAC, which never
under-reports energy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from spikingjelly.activation_based import neuron
from torch import Tensor, nn

from ..neurons.spike_ops import SpikeMatMul
from ..topology import SYNAPTIC_TYPES

#: Modules that multiply two activations (attention's QKᵀ and AV in the SNN).
PRODUCT_TYPES: tuple[type[nn.Module], ...] = (SpikeMatMul,)

MAC, AC = "mac", "ac"

#: Modules whose output is made of their input's spikes (spikes in → spikes out).
PASSIVE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout,
    nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.MaxPool1d, nn.MaxPool2d,
)


def _storage(t: Tensor) -> int:
    return t.untyped_storage().data_ptr()


@torch.no_grad()
def trace_synapse_roles(
    net: nn.Module,
    run: Callable[[], object],
    *,
    input_spikes: Tensor | None = None,
    spiking_types: type | tuple[type, ...] = neuron.BaseNode,
    product_types: type | tuple[type, ...] = PRODUCT_TYPES,
) -> dict[str, str]:
    """``{layer name: "mac" | "ac"}`` for every Linear / Conv2d and ``product_types`` module that ``run()`` calls.

    ``run`` performs one forward pass of ``net``; pass its input as ``input_spikes`` when
    the network is fed spikes (an encoder that emits spikes). A product of two
    activations does ACs when both operands come from spiking nodes, MACs otherwise.
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
        if isinstance(m, spiking_types):
            hooks.append(m.register_forward_hook(lambda mod, a, out: mark(out[0] if isinstance(out, tuple) else out)))
        elif isinstance(m, PASSIVE_TYPES):
            def passive(mod, args, out):
                if _storage(args[0]) in spike_storages:
                    mark(out)
            hooks.append(m.register_forward_hook(passive))
        elif isinstance(m, SYNAPTIC_TYPES) or isinstance(m, product_types):
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
