"""Energy and time: exact synaptic events (nonzero input × nonzero weight), pairs of nonzeros
in activation-activation products, MAC vs AC roles, MASFR and accuracy at every time step,
the pJ-per-operation energy model, and softmax / LayerNorm operation counts (beside it).

``energy`` reads a network and never changes it.
"""

from .events import count_events, layer_fanout, product_pairs
from .model import EnergyModel
from .monitors import OperationCountMonitor, ProductEventMonitor, SpikeCountMonitor, SynapticEventMonitor
from .roles import AC, MAC, trace_synapse_roles
from .timeline import TimeCurves, evaluate_over_time

__all__ = ["AC", "MAC", "EnergyModel", "OperationCountMonitor", "ProductEventMonitor", "SpikeCountMonitor",
           "SynapticEventMonitor", "TimeCurves", "count_events", "evaluate_over_time", "layer_fanout",
           "product_pairs", "trace_synapse_roles"]
