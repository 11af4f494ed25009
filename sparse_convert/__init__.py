"""sparse-convert: sparse ANN to sparse SNN conversion on SpikingJelly.

Subpackages: ``topology`` (masks, dynamic sparse training), ``neurons`` (conversion
nodes), ``methods`` (conversion recipes), ``energy`` (synaptic events, MASFR, energy),
``models``, ``analysis``, ``experiments``; ``data`` loads datasets.
"""

__version__ = "0.1.0"
