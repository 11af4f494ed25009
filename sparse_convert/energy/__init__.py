"""Energy and time: exact synaptic events (nonzero input × nonzero weight), pairs of nonzeros
in activation-activation products, MAC vs AC roles, MASFR and accuracy at every time step,
the pJ-per-operation energy models (named presets), and softmax / LayerNorm operation counts (beside it).

``energy`` reads a network and never changes it.
"""

from .events import count_events, layer_fanout, product_pairs
from .model import DEFAULT_ENERGY_MODEL, ENERGY_MODELS, EnergyModel, energy_by_model, energy_model, reduction_by_model
from .monitors import (
    OperationCountMonitor,
    ProductEventMonitor,
    SpikeCountMonitor,
    StepCountMonitor,
    SynapticEventMonitor,
    uncounted_synaptic_layers,
)
from .roles import AC, MAC, trace_synapse_roles
from .steps import StepTracker, network_step_mode
from .timeline import TimeCurves, evaluate_over_time

__all__ = ["AC", "DEFAULT_ENERGY_MODEL", "ENERGY_MODELS", "MAC", "EnergyModel", "OperationCountMonitor",
           "ProductEventMonitor", "SpikeCountMonitor", "StepCountMonitor", "StepTracker", "SynapticEventMonitor",
           "TimeCurves", "count_events", "energy_by_model", "energy_model", "evaluate_over_time", "layer_fanout",
           "network_step_mode", "product_pairs", "reduction_by_model", "trace_synapse_roles",
           "uncounted_synaptic_layers"]
