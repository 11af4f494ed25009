"""Topology schedulers: how the masks of a model are set and evolve during training.

Attach one to any training loop and call ``step()`` after ``optimizer.step()``:

    sched = build_topology("cht", model, optimizer, sparsity=0.9, total_steps=n)
    for x, y in loader:
        loss(model(x), y).backward(); optimizer.step(); sched.step()

Rules register themselves by name (``@register_topology("set")``); ``summary()`` is what
``result.json`` records of the topology. ``static`` (this module) keeps its random masks;
the dynamic rules are in ``dst.py`` (``cht``, ``set``, ``rigl``) and the pruning rules in
``pruning.py`` (``magnitude``, ``depgraph``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..typecheck import check_call
from .init import swi_masked_
from .masks import (
    attach_mask,
    current_mask,
    default_dense_layers,
    density,
    masked_layers,
    random_masks,
    synaptic_layers,
)


@torch.no_grad()
def replace_masks(layers: Mapping[str, nn.Module], masks: Mapping[str, Tensor],
                  optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Give each named layer its new mask; returns the number of links changed per layer.

    At every position whose link appears or disappears the weight becomes 0 (removed links
    vanish, new ones start at 0) and so does every tensor of ``optimizer.state[weight]``
    shaped like the weight (momentum, Adam moments). Links kept by both masks are untouched.
    """
    changed = {}
    for name, mask in masks.items():
        layer = layers[name]
        old = current_mask(layer)
        flipped = old ^ mask.to(old.device, torch.bool)
        layer.weight.masked_fill_(flipped, 0.0)
        if optimizer is not None:
            for value in optimizer.state.get(layer.weight, {}).values():
                if torch.is_tensor(value) and value.shape == layer.weight.shape:
                    value.masked_fill_(flipped, 0)
        attach_mask(layer, mask)
        changed[name] = int(flipped.count_nonzero())
    return changed


class TopologyScheduler:
    """Base: random initial masks at ``sparsity`` (output layer dense), SWI weights, no evolution."""

    rule: ClassVar[str] = "static"

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float, *,
                 total_steps: int = 0, seed: int = 0, dense_layers: tuple[str, ...] | None = None,
                 init: str = "swi"):
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        if init not in ("swi", "keep"):
            raise ValueError(f"init must be 'swi' or 'keep', got {init!r}")
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}")
        self.model = model
        self.optimizer = optimizer
        self.sparsity = sparsity
        self.total_steps = int(total_steps)
        self.init = init
        self.generator = torch.Generator().manual_seed(seed)
        self.dense_layers = default_dense_layers(model) if dense_layers is None else tuple(dense_layers)
        self.steps_done = 0
        self.history: list[dict[str, Any]] = []
        if sparsity > 0:
            self.initialize()

    def initialize(self) -> None:
        """Set the initial masks (uniformly random) and weights (SWI unless ``init="keep"``)."""
        random_masks(self.model, self.sparsity, generator=self.generator, exclude=self.dense_layers)
        if self.init == "swi":
            swi_masked_(self.model, self.generator)

    def step(self) -> None:
        """Call after every ``optimizer.step()``."""
        self.steps_done += 1

    def layers(self) -> dict[str, nn.Module]:
        """The masked layers this scheduler evolves, by name, in module (forward) order."""
        return {n: m for n, m in masked_layers(self.model).items() if n not in self.dense_layers}

    def prunable(self) -> dict[str, nn.Module]:
        """The layers this scheduler may mask: all synaptic layers but ``dense_layers``."""
        return {n: m for n, m in synaptic_layers(self.model).items() if n not in self.dense_layers}

    def options(self) -> dict[str, Any]:
        """The rule's options, as recorded in ``summary()``."""
        return {"init": self.init}

    def summary(self) -> dict[str, Any]:
        """Rule, options, final per-layer density and the links changed at each update."""
        d = density(self.model)
        return {"rule": self.rule, "sparsity": self.sparsity, "steps": self.steps_done,
                "options": self.options(), "density": d.to_dict(), "updates": list(self.history)}

    def state_dict(self) -> dict[str, Any]:
        """Step counter, generator state and update history: with the model's and optimizer's state
        dicts, enough to resume and repeat the uninterrupted run's masks bit for bit."""
        return {"steps_done": self.steps_done, "generator": self.generator.get_state(),
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (load the model's state dict, masks included, as well)."""
        self.steps_done = int(state["steps_done"])
        self.generator.set_state(state["generator"])
        self.history = list(state["history"])


_TOPOLOGIES: dict[str, type[TopologyScheduler]] = {"static": TopologyScheduler}


def register_topology(name: str) -> Callable[[type[TopologyScheduler]], type[TopologyScheduler]]:
    """Class decorator: make a scheduler available to ``build_topology(name, ...)``."""

    def wrap(cls: type[TopologyScheduler]) -> type[TopologyScheduler]:
        if name in _TOPOLOGIES:
            raise ValueError(f"topology {name!r} is already registered")
        cls.rule = name
        _TOPOLOGIES[name] = cls
        return cls

    return wrap


def available_topologies() -> list[str]:
    """Names ``build_topology`` accepts."""
    return sorted(_TOPOLOGIES)


def build_topology(name: str, model: nn.Module, optimizer: torch.optim.Optimizer | None, sparsity: float,
                   **options: Any) -> TopologyScheduler:
    """The scheduler registered as ``name``, attached to ``model`` and ``optimizer``."""
    if name not in _TOPOLOGIES:
        raise ValueError(f"unknown topology {name!r}; available: {', '.join(available_topologies())}")
    check_call(_TOPOLOGIES[name], f"topology {name!r}", model, optimizer, sparsity, **options)
    return _TOPOLOGIES[name](model, optimizer, sparsity, **options)
