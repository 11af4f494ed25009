"""Frozen synapse masks attached to ordinary ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers.

SpikingJelly's ``layer.Linear`` / ``layer.Conv1d`` / ``layer.Conv2d`` subclass these and take
masks too. A layer that computes with a weight other than ``weight`` (SpikingJelly's
``WSLinear`` / ``WSConv2d`` standardise it, ``nn.utils.parametrize`` and weight norm
recompute it) is refused: zeroing ``weight`` would not zero the weight it uses.

A mask is a boolean buffer ``weight_mask`` on the layer (saved in ``state_dict``); the
layer keeps its class, so SpikingJelly, torch.fx and timm still recognise it.

Masked weights are kept exactly zero by three mechanisms, none of which needs the user
to change the training loop:

* the weight is multiplied by its mask when the mask is attached and after every
  ``load_state_dict``;
* a global ``torch.optim`` step pre-hook zeroes the gradient of masked entries (so
  momentum and Adam moments of masked entries stay zero) and a post-hook re-applies
  the mask to the weight, which makes any optimizer exact, weight decay included;
* a forward pre-hook re-registers the layer's weight with those optimizer hooks, so a
  ``copy.deepcopy`` of a masked model (which copies buffers and hooks but not our
  registry) is protected from its first forward pass on.

``nn.utils.prune`` and ``nn.utils.parametrize`` were not used: both replace ``weight``
by a computed tensor, which breaks ``copy.deepcopy`` and conv-BN fusion (SpikingJelly's
fusion deep-copies the model, which fails on a pruned one) and hides the layer's real weights.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

MASK_NAME = "weight_mask"
#: Layer types that carry synapses (weights between neurons) and may be masked.
SYNAPTIC_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)

# weight Parameter -> weakref to the layer that owns it and its mask.
_OWNERS: WeakIdKeyDictionary = WeakIdKeyDictionary()
_OPTIMIZER_HOOKS: list = []


def is_synaptic(module: nn.Module) -> bool:
    """True for the layer types that carry synapses and may hold a mask."""
    return isinstance(module, SYNAPTIC_TYPES)


def synaptic_layers(model: nn.Module) -> dict[str, nn.Module]:
    """All ``nn.Linear`` / ``nn.Conv1d`` / ``nn.Conv2d`` layers of ``model`` by qualified name, in module order."""
    return {name: m for name, m in model.named_modules() if is_synaptic(m)}


def output_layer_name(model: nn.Module) -> str:
    """Name of the last synaptic layer in module order: the classifier, kept dense by default."""
    names = list(synaptic_layers(model))
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear, nn.Conv1d or nn.Conv2d layer")
    return names[-1]


#: Attribute by which a model names further layers it keeps dense (e.g. a ViT's patch embedding).
KEEP_DENSE_ATTR = "keep_dense"


def default_dense_layers(model: nn.Module) -> tuple[str, ...]:
    """Layers kept dense unless told otherwise: the output layer (as in the paper) and any the model lists
    in its ``keep_dense`` attribute."""
    return (*getattr(model, KEEP_DENSE_ATTR, ()), output_layer_name(model))


def kept_links(layer: nn.Module, sparsity: float) -> int:
    """Links a sparse layer holds at ``sparsity``: ``round((1 − sparsity) · n)``, at least one."""
    return max(1, round((1.0 - sparsity) * layer.weight.numel()))


def current_mask(layer: nn.Module) -> Tensor:
    """The layer's mask, or all ones (every link present) when it is dense."""
    mask = get_mask(layer)
    return torch.ones_like(layer.weight, dtype=torch.bool) if mask is None else mask


def get_mask(layer: nn.Module) -> Tensor | None:
    """The layer's boolean mask, or ``None`` when it is dense."""
    return getattr(layer, MASK_NAME, None) if MASK_NAME in layer._buffers else None


def masked_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Layers of ``model`` that carry a mask, by qualified name."""
    return {name: m for name, m in model.named_modules() if get_mask(m) is not None}


def attach_mask(layer: nn.Module, mask: Tensor) -> None:
    """Attach (or replace) ``mask`` on ``layer`` and zero the masked weights.

    ``mask`` must have the weight's shape and hold only 0/1 (or bool) values. Replacing
    an existing mask writes into the same buffer, so references to it stay valid.
    """
    if not is_synaptic(layer):
        raise TypeError(f"masks attach to nn.Linear, nn.Conv1d or nn.Conv2d, got {type(layer).__name__}")
    why = _computed_weight(layer)
    if why:
        raise TypeError(f"cannot mask {type(layer).__name__}: {why}, so zeroing its weight entries would not "
                        f"remove those synapses; use the plain layer (e.g. layer.Conv2d / nn.Conv2d) instead")
    weight = layer.weight
    if tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not fit {type(layer).__name__} "
            f"weight of shape {tuple(weight.shape)}"
        )
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and torch.isnan(mask).any():
            raise ValueError("mask contains NaN")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask values must be 0 or 1")
    mask = mask.to(device=weight.device, dtype=torch.bool)
    existing = get_mask(layer)
    if existing is not None and existing.shape == mask.shape and existing.device == mask.device:
        existing.copy_(mask)
    else:
        layer.register_buffer(MASK_NAME, mask.clone())
    _install_layer_hooks(layer)
    apply_mask(layer)


def _computed_weight(layer: nn.Module) -> str:
    """Why ``layer`` computes with a weight other than its ``weight`` entries ('' when it does not)."""
    if callable(getattr(layer, "get_weight", None)):
        return "it computes with get_weight() (weight standardisation: nonzero where weight is zero)"
    if nn.utils.parametrize.is_parametrized(layer, "weight"):
        return "its weight is parametrized (nn.utils.parametrize)"
    if any(type(h).__name__ == "WeightNorm" for h in layer._forward_pre_hooks.values()):
        return "its weight is recomputed by weight norm"
    return ""


def remove_mask(layer: nn.Module) -> None:
    """Make ``layer`` dense again (weights stay as they are: masked ones remain zero)."""
    if get_mask(layer) is None:
        return
    del layer._buffers[MASK_NAME]
    _OWNERS.pop(layer.weight, None)


@torch.no_grad()
def apply_mask(layer: nn.Module) -> None:
    """Zero the masked weights of ``layer`` (no-op for a dense layer)."""
    mask = get_mask(layer)
    if mask is not None:
        layer.weight.mul_(mask)
        _OWNERS[layer.weight] = weakref.ref(layer)


def apply_masks(model: nn.Module) -> None:
    """Zero the masked weights of every masked layer in ``model``."""
    for layer in masked_layers(model).values():
        apply_mask(layer)


def attach_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Attach masks by qualified layer name; unknown names are an error naming them."""
    layers = dict(model.named_modules())
    unknown = [n for n in masks if n not in layers]
    if unknown:
        raise KeyError(f"no layer named {unknown} in {type(model).__name__}")
    for name, mask in masks.items():
        attach_mask(layers[name], mask)


def masks_from_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The ``weight_mask`` entries of a state dict, keyed by layer name."""
    suffix = "." + MASK_NAME
    return {k[: -len(suffix)]: v for k, v in state.items() if k.endswith(suffix)}


def random_masks(
    model: nn.Module,
    sparsity: float,
    *,
    generator: torch.Generator | None = None,
    exclude: Iterable[str] | None = None,
) -> dict[str, Tensor]:
    """Attach uniformly random masks at ``sparsity`` (fraction of removed links) per layer.

    Every synaptic layer except ``exclude`` (default: ``default_dense_layers``, the output
    layer as in the paper) gets exactly ``round((1 - sparsity) * n)`` links. Returns the masks.
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    skip = set(default_dense_layers(model) if exclude is None else exclude)
    masks = {}
    for name, layer in synaptic_layers(model).items():
        if name in skip or sparsity == 0.0:
            continue
        n = layer.weight.numel()
        keep = kept_links(layer, sparsity)
        order = torch.randperm(n, generator=generator)
        flat = torch.zeros(n, dtype=torch.bool)
        flat[order[:keep]] = True
        masks[name] = flat.view_as(layer.weight)
        attach_mask(layer, masks[name])
    return masks


@dataclass(frozen=True)
class Density:
    """Fraction of existing links, network-wise and per synaptic layer (dense layers count 1.0)."""

    network: float
    layers: dict[str, float]
    links: int
    possible_links: int

    def to_dict(self) -> dict:
        return {"network": self.network, "layers": dict(self.layers),
                "links": self.links, "possible_links": self.possible_links}


def density(model: nn.Module) -> Density:
    """Link density of every synaptic layer of ``model`` and of the whole network."""
    layers, links, possible = {}, 0, 0
    for name, layer in synaptic_layers(model).items():
        mask = get_mask(layer)
        n = layer.weight.numel()
        k = n if mask is None else int(mask.sum())
        layers[name] = k / n
        links += k
        possible += n
    if possible == 0:
        raise ValueError(f"{type(model).__name__} has no synaptic layer")
    return Density(links / possible, layers, links, possible)


# -- enforcement ---------------------------------------------------------------------


def _track_weight(layer: nn.Module, args: object) -> None:
    """Forward pre-hook: keep the layer's current weight registered with the optimizer hooks."""
    if layer.weight not in _OWNERS and get_mask(layer) is not None:
        _OWNERS[layer.weight] = weakref.ref(layer)


def _reapply_after_load(layer: nn.Module, incompatible_keys: object) -> None:
    apply_mask(layer)


def _install_layer_hooks(layer: nn.Module) -> None:
    if not any(h is _track_weight for h in layer._forward_pre_hooks.values()):
        layer.register_forward_pre_hook(_track_weight)
    if not any(h is _reapply_after_load for h in layer._load_state_dict_post_hooks.values()):
        layer.register_load_state_dict_post_hook(_reapply_after_load)
    _install_optimizer_hooks()


def _masked_params(optimizer: torch.optim.Optimizer):
    for group in optimizer.param_groups:
        for p in group["params"]:
            ref = _OWNERS.get(p)
            layer = ref() if ref is not None else None
            if layer is None or layer.weight is not p:
                continue
            mask = get_mask(layer)
            if mask is not None:
                yield p, mask


@torch.no_grad()
def _zero_masked_grads(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    for p, mask in _masked_params(optimizer):
        if p.grad is not None:
            p.grad.mul_(mask)


@torch.no_grad()
def _zero_masked_weights(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
    for p, mask in _masked_params(optimizer):
        p.mul_(mask)


def _install_optimizer_hooks() -> None:
    if not _OPTIMIZER_HOOKS:
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        _OPTIMIZER_HOOKS.append(register_optimizer_step_pre_hook(_zero_masked_grads))
        _OPTIMIZER_HOOKS.append(register_optimizer_step_post_hook(_zero_masked_weights))
