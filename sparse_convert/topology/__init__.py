"""Sparse topology: masks on synapses, their initialisation, and schedulers that evolve them in training.

``topology`` knows nothing of spikes. Rules by name (``build_topology``): ``static``, ``cht``,
``set``, ``rigl``, ``magnitude``, ``depgraph``.
"""

from .dst import CHTScheduler, DynamicSparseScheduler, RigLScheduler, SETScheduler  # importing registers the rules
from .init import csti_mask, input_correlation, swi_, swi_masked_
from .link_prediction import ch2_l3n_scores, ch_conv_scores, link_scores
from .masks import (
    MASK_NAME,
    SYNAPTIC_TYPES,
    Density,
    apply_mask,
    apply_masks,
    attach_mask,
    attach_masks,
    current_mask,
    default_dense_layers,
    density,
    get_mask,
    is_synaptic,
    kept_links,
    masked_layers,
    masks_from_state_dict,
    output_layer_name,
    random_masks,
    remove_mask,
    synaptic_layers,
)
from .percolation import percolate, percolation_chains
from .pruning import (
    DepGraphScheduler,
    MagnitudeScheduler,
    PruningScheduler,
    magnitude_prune,
    structural_prune,
)
from .schedulers import TopologyScheduler, available_topologies, build_topology, register_topology, replace_masks

__all__ = [
    "TopologyScheduler", "available_topologies", "build_topology", "register_topology", "replace_masks",
    "DynamicSparseScheduler", "CHTScheduler", "SETScheduler", "RigLScheduler",
    "PruningScheduler", "MagnitudeScheduler", "DepGraphScheduler", "magnitude_prune", "structural_prune",
    "ch2_l3n_scores", "ch_conv_scores", "link_scores", "percolate", "percolation_chains",
    "csti_mask", "input_correlation", "swi_", "swi_masked_",
    "MASK_NAME", "SYNAPTIC_TYPES", "Density", "apply_mask", "apply_masks", "attach_mask",
    "attach_masks", "current_mask", "density", "get_mask", "is_synaptic", "kept_links", "masked_layers",
    "masks_from_state_dict", "default_dense_layers", "output_layer_name", "random_masks", "remove_mask",
    "synaptic_layers",
]
