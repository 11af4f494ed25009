"""Conversion neurons as SpikingJelly 2.0 nodes, and the ANN activations they pair with.

Every node subclasses :class:`ConversionNode` (a ``spikingjelly`` ``BaseNode``) and has a
``backend`` in ``("torch", "cupy")``; :func:`set_backend` switches all of them in a network.
"""

from __future__ import annotations

from torch import nn

from .aec import AECActivation, AECEncoder, AECInit, AECNode, aec_code
from .base import BACKENDS, ConversionNode, State, channel_view, inverse_softplus
from .qcfs import SQCFS, CSQCFSNode, floor_ste
from .snm import NeuronClip, SNMNode
from .spike_ops import MatMul, SpikeMatMul, increment_operands
from .stbif import LSQQuantizer, STBIFNode, level_bounds


def set_backend(net: nn.Module, name: str) -> int:
    """Set ``backend = name`` on every sparse-convert node in ``net``; returns how many were set."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    nodes = [m for m in net.modules() if isinstance(m, ConversionNode)]
    for node in nodes:
        node.backend = name
    return len(nodes)


__all__ = ["AECActivation", "AECEncoder", "AECInit", "AECNode", "BACKENDS", "ConversionNode", "CSQCFSNode",
           "LSQQuantizer", "MatMul", "NeuronClip", "SNMNode", "SQCFS", "STBIFNode", "SpikeMatMul", "State", "aec_code",
           "channel_view", "floor_ste", "increment_operands", "inverse_softplus", "level_bounds", "set_backend"]
