"""Topology schedulers: how the masks of a model are set and evolve during training.

Attach one to any training loop and call ``step()`` after ``optimizer.step()``:

    sched = build_topology("static", model, optimizer, sparsity=0.9, total_steps=n)
    for x, y in loader:
        loss(model(x), y).backward(); optimizer.step(); sched.step()

Rules register themselves by name (``@register_topology("set")``); ``summary()`` is what
``result.json`` records of the topology.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from .init import swi_masked_
from .masks import density, output_layer_name, random_masks


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
        self.model = model
        self.optimizer = optimizer
        self.sparsity = sparsity
        self.total_steps = int(total_steps)
        self.generator = torch.Generator().manual_seed(seed)
        self.dense_layers = (output_layer_name(model),) if dense_layers is None else tuple(dense_layers)
        self.steps_done = 0
        self.history: list[dict[str, Any]] = []
        if sparsity > 0:
            random_masks(model, sparsity, generator=self.generator, exclude=self.dense_layers)
            if init == "swi":
                swi_masked_(model, self.generator)

    def step(self) -> None:
        """Call after every ``optimizer.step()``."""
        self.steps_done += 1

    def summary(self) -> dict[str, Any]:
        """Rule, final per-layer density and the links changed at each update."""
        d = density(self.model)
        return {"rule": self.rule, "sparsity": self.sparsity, "steps": self.steps_done,
                "density": d.to_dict(), "updates": list(self.history)}

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "generator": self.generator.get_state(),
                "history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
    try:
        return _TOPOLOGIES[name](model, optimizer, sparsity, **options)
    except TypeError as err:
        raise ValueError(f"bad options for topology {name!r}: {err}") from None
