"""Sparse topology: masks on synapses, their initialisation, and schedulers that evolve them in training.

``topology`` knows nothing of spikes.
"""

from .init import swi_, swi_masked_
from .masks import (
    MASK_NAME,
    SYNAPTIC_TYPES,
    Density,
    apply_mask,
    apply_masks,
    attach_mask,
    attach_masks,
    density,
    get_mask,
    is_synaptic,
    masked_layers,
    masks_from_state_dict,
    output_layer_name,
    random_masks,
    remove_mask,
    synaptic_layers,
)
from .schedulers import TopologyScheduler, available_topologies, build_topology, register_topology

__all__ = [
    "TopologyScheduler", "available_topologies", "build_topology", "register_topology", "swi_", "swi_masked_",
    "MASK_NAME", "SYNAPTIC_TYPES", "Density", "apply_mask", "apply_masks", "attach_mask",
    "attach_masks", "density", "get_mask", "is_synaptic", "masked_layers",
    "masks_from_state_dict", "output_layer_name", "random_masks", "remove_mask",
    "synaptic_layers",
]
