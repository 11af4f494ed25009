"""Energy and time: exact synaptic events (nonzero input × nonzero weight), MAC vs AC roles,
MASFR and accuracy at every time step, and the pJ-per-operation energy model.

``energy`` reads a network and never changes it.
"""

from .events import count_events, layer_fanout
from .model import EnergyModel
from .monitors import SpikeCountMonitor, SynapticEventMonitor
from .roles import AC, MAC, trace_synapse_roles
from .timeline import TimeCurves, evaluate_over_time

__all__ = ["AC", "MAC", "EnergyModel", "SpikeCountMonitor", "SynapticEventMonitor", "TimeCurves",
           "count_events", "evaluate_over_time", "layer_fanout", "trace_synapse_roles"]
