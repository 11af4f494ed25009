"""The conversion-method interface and its registry: ``get_method("qcfs")(levels=8)``.

A method says how to prepare a trained ANN (swap activations, fine-tune, calibrate) and
how to build the SNN from it (``prepare`` and ``build``). A new method is one module that
subclasses ``ConversionMethod`` and decorates it with ``@register_method``.

Options. A method's ``Options`` is a dataclass; its fields are the method's options, under the
flat names the CLI (``--method-opt lr=0.01``), ``RunConfig.method_options`` and sweep files use.
A method that fine-tunes derives its options from ``FineTuneOptions``, a dataclass subclass of
``training.FitConfig``: the training fields (``epochs``, ``lr``, ``batch_size``, ``optimizer``, ...)
are FitConfig's own, checked by FitConfig at construction, and ``fit_config`` hands them to
``training.fit``. A subclass only adds its fields and names its defaults of FitConfig's fields in
``fit_defaults``. Derivation rather than a nested ``FitConfig`` keeps the option names flat, so
options written by earlier runs (``{"lr": 0.01, "layer_epochs": 3}``) still load.

Building. ``ConversionMethod.snn_body`` is the skeleton every ``build`` shares (copy the prepared
ANN, average pooling, BatchNorm folded, activations swapped for ``TimeFold`` nodes, biases moved
to step 0); a method supplies the node for each activation type and wraps the body in a
``SpikingNetwork`` with its encoder.
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from ..data import DataSplits
from ..training import FitConfig
from ..typecheck import check_options, declared_types
from .snn import SpikingNetwork, TimeFold
from .transforms import fold_batchnorm, maxpool_to_avgpool, move_bias_to_first_step, named_leaves, replace_modules

#: FitConfig's fields, the training options every fine-tuning method takes.
FIT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(FitConfig))

#: Builds the node of one activation: ``factory(name, activation)``.
NodeFactory = Callable[[str, nn.Module], nn.Module]


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


@dataclass
class FineTuneOptions(FitConfig):
    """Options of a method that fine-tunes its ANN: FitConfig's fields under their own names, plus the subclass's.

    ``fit_defaults`` (a plain class attribute of the subclass) sets the method's defaults of FitConfig's
    fields, e.g. ``fit_defaults = {"lr": 1e-3, "optimizer": "adamw"}``; the type stays FitConfig's. A
    subclass's ``__post_init__`` calls ``super().__post_init__()``, which checks the training fields.
    """

    fit_defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defaults = cls.__dict__.get("fit_defaults", {})
        unknown = sorted(set(defaults) - set(FIT_FIELDS))
        if unknown:
            raise TypeError(f"{cls.__name__}.fit_defaults names {unknown}, which are not FitConfig fields {FIT_FIELDS}")
        if "__annotations__" not in cls.__dict__:
            cls.__annotations__ = {}
        hints = declared_types(FitConfig)
        for name, value in defaults.items():  # re-declared for @dataclass with FitConfig's type, keeping its place
            cls.__dict__["__annotations__"][name] = hints[name]
            setattr(cls, name, value)

    def fit_config(self, epochs: int | None = None) -> FitConfig:
        """The ``FitConfig`` of one fine-tuning stage: these options' training fields, ``epochs`` replaced if given."""
        values = {name: getattr(self, name) for name in FIT_FIELDS}
        if epochs is not None:
            values["epochs"] = epochs
        return FitConfig(**values)


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

    def snn_body(self, ann: nn.Module, nodes: Mapping[type[nn.Module], NodeFactory], *,
                 bias_once: bool = False) -> nn.Module:
        """The SNN body of the prepared ``ann``, the steps every ``build`` shares; ``ann`` is left intact.

        A copy of ``ann`` in eval mode, max-pooling made average pooling, BatchNorm folded into the
        convolutions; then, type by type in the order of ``nodes``, each module of that type replaced by
        ``TimeFold(nodes[type](name, module))``; with ``bias_once``, each synaptic layer's bias enters at
        step 0 only (``move_bias_to_first_step``). ``ann`` must hold a module of the first type.
        """
        first = next(iter(nodes))
        if not named_leaves(ann, first):
            raise ValueError(f"the ANN has no {first.__name__}: run {type(self).__name__}.prepare first")
        body = copy.deepcopy(ann).eval()
        maxpool_to_avgpool(body)
        body = fold_batchnorm(body)
        for kind, factory in nodes.items():
            replace_modules(body, kind, lambda name, module, factory=factory: TimeFold(factory(name, module)))
        if bias_once:
            move_bias_to_first_step(body)
        return body

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
