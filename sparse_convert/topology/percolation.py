"""Network percolation (chain removal): drop the links of neurons that can no longer pass a signal.

Along a chain of masked layers in forward order, a hidden neuron with no outgoing link
loses its incoming links, and one with no incoming link loses its outgoing links (the
Cannistraci-Hebb training code's chain removal, ``docs/topology.md`` §3). The network's inputs
and the outputs of the chain's last layer (which feed the dense classifier) are never
pruned. For Conv2d layers a neuron is a channel.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


def out_alive(mask: Tensor) -> Tensor:
    """``[out]`` bool: output neurons (channels) of a layer that have at least one incoming link."""
    return mask.flatten(1).any(1)


def in_alive(mask: Tensor, groups: int = 1) -> Tensor:
    """``[in]`` bool: input neurons (channels) of a layer that have at least one outgoing link."""
    if mask.dim() == 2:
        return mask.any(0)
    out, per_group = mask.shape[:2]
    return mask.reshape(groups, out // groups, per_group, -1).any(3).any(1).reshape(-1)


def drop_inputs(mask: Tensor, alive: Tensor, groups: int = 1) -> Tensor:
    """``mask`` without the links that leave the inputs where ``alive`` (``[in]``) is False."""
    if mask.dim() == 2:
        return mask & alive[None, :]
    out, per_group = mask.shape[:2]
    blocks = mask.reshape(groups, out // groups, per_group, -1)
    return (blocks & alive.reshape(groups, 1, per_group, 1)).reshape(mask.shape)


def _fan_in(prev: Tensor, nxt: Tensor, groups: int) -> int | None:
    """How many inputs of ``nxt`` each output of ``prev`` feeds (1, or H·W after a flatten); None if unlinked."""
    outputs = prev.shape[0]
    inputs = nxt.shape[1] * (groups if nxt.dim() == 4 else 1)
    if inputs == outputs:
        return 1
    if nxt.dim() == 2 and inputs % outputs == 0:
        return inputs // outputs
    return None


def percolate(masks: Sequence[Tensor], groups: Sequence[int] | None = None) -> list[Tensor]:
    """Chain removal over ``masks`` (``[out, in]`` or ``[out, in/groups, kh, kw]``) in forward order.

    One backward sweep removes the incoming links of every hidden neuron without an
    outgoing link (cascading towards the input), then one forward sweep removes the
    outgoing links of every hidden neuron without an incoming link (cascading towards the
    output); the result is a fixpoint of both rules. Consecutive layers are linked when the
    next one's inputs are the previous one's outputs (same count, or C·H·W features of a
    flattened Conv2d output into a Linear); elsewhere the chain is broken and neither rule
    acts across the break. Returns new masks; the inputs are not modified.
    """
    groups = [1] * len(masks) if groups is None else list(groups)
    if len(groups) != len(masks):
        raise ValueError(f"got {len(groups)} group counts for {len(masks)} masks")
    masks = [m.clone() for m in masks]
    links = [_fan_in(masks[i], masks[i + 1], groups[i + 1]) for i in range(len(masks) - 1)]
    for i in reversed(range(len(masks) - 1)):
        if links[i] is None:
            continue
        has_out = in_alive(masks[i + 1], groups[i + 1]).reshape(masks[i].shape[0], links[i]).any(1)
        masks[i] &= has_out.reshape(-1, *[1] * (masks[i].dim() - 1))
    for i in range(1, len(masks)):
        if links[i - 1] is None:
            continue
        has_in = out_alive(masks[i - 1]).repeat_interleave(links[i - 1])
        masks[i] = drop_inputs(masks[i], has_in, groups[i])
    return masks


#: Attribute by which a model lists its feed-forward chains of layers by name (a ViT: each block's
#: ``fc1 → fc2``; residual connections break every other chain). Without it, all masked layers
#: in module order form one chain, which is right for an MLP or a VGG.
CHAINS_ATTR = "percolation_chains"


def percolation_chains(model: nn.Module, names: Sequence[str]) -> list[list[str]]:
    """The chains of the layers ``names`` that percolation follows (see ``CHAINS_ATTR``)."""
    declared = getattr(model, CHAINS_ATTR, None)
    if declared is None:
        return [list(names)]
    known = set(names)
    return [[n for n in chain if n in known] for chain in declared]
