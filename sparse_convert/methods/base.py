"""The conversion-method interface and its registry: ``get_method("qcfs")(levels=8)``.

A method says how to prepare a trained ANN (swap activations, fine-tune, calibrate) and
how to build the SNN from it (``prepare`` and ``build``). A new method is one module that
subclasses ``ConversionMethod`` and decorates it with ``@register_method``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..data import DataSplits
from ..typecheck import check_options, declared_types
from .snn import SpikingNetwork


@dataclass
class MethodContext:
    """What a method may use while preparing an ANN: data, device, seed, progress bars."""

    data: DataSplits
    device: torch.device = torch.device("cpu")
    seed: int = 0
    progress: bool = True

    def example_input(self, n: int = 2) -> torch.Tensor:
        """The first ``n`` training inputs as one batch, on ``device``."""
        xs = [self.data.train[i][0] for i in range(min(n, len(self.data.train)))]
        return torch.stack(xs).to(self.device)


class ConversionMethod(ABC):
    """One ANN-to-SNN conversion scheme.

    ``time_mode`` is ``"integrate"`` when one run of ``t_max`` steps gives every T (methods
    1, 2, 4) and ``"window"`` when T is a window size that needs a run per T (method 3).
    ``epoch_options`` names the options that set the epochs of its fine-tuning stages.
    """

    name: ClassVar[str]
    time_mode: ClassVar[Literal["integrate", "window"]] = "integrate"
    epoch_options: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type]

    def __init__(self, **options: Any):
        known = {f.name for f in dataclasses.fields(self.Options)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown options {unknown} for method {self.name!r}; it takes {sorted(known)}")
        check_options(options, declared_types(self.Options), lambda key: f"option {key} of method {self.name!r}")
        self.options = self.Options(**options)

    @abstractmethod
    def prepare(self, ann: nn.Module, ctx: MethodContext) -> nn.Module:
        """Turn the trained ANN into this method's ANN (may edit ``ann`` in place); return it."""

    def convert(self, ann: nn.Module, window: int | None = None) -> SpikingNetwork:
        """The SNN of the prepared ANN (``build``); weights and masks carry over, ``ann`` is left intact.

        ``window`` is the window size T of a ``"window"`` method and must be ``None`` otherwise.
        """
        if window is not None and self.time_mode == "integrate":
            raise ValueError(f"method {self.name!r} integrates over time; it has no window")
        return self.build(ann, window)

    @abstractmethod
    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        """Build the SNN from the prepared ANN (``window`` already checked against ``time_mode``)."""

    @classmethod
    def with_stage_epochs(cls, epochs: int) -> dict[str, int]:
        """Options that give every fine-tuning stage of this method ``epochs`` epochs."""
        return {name: epochs for name in cls.epoch_options}

    def windows(self, t_max: int) -> list[int]:
        """Window sizes evaluated up to ``t_max`` (only for ``time_mode == "window"``)."""
        raise NotImplementedError(f"method {self.name!r} integrates over time and has no windows")


_METHODS: dict[str, type[ConversionMethod]] = {}


def register_method(cls: type[ConversionMethod]) -> type[ConversionMethod]:
    """Class decorator: make ``cls`` available as ``get_method(cls.name)``."""
    if cls.name in _METHODS:
        raise ValueError(f"method {cls.name!r} is already registered")
    _METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names ``get_method`` accepts."""
    return sorted(_METHODS)


def get_method(name: str) -> type[ConversionMethod]:
    """The method class registered as ``name``."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    return _METHODS[name]
