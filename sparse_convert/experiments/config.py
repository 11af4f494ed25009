"""One run's configuration: what to train, how sparse, which conversion, how long to simulate."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data import available_datasets, needs_data_root
from ..defaults import E_AC_PJ, E_MAC_PJ, T_MAX
from ..methods import available_methods
from ..models import available_models
from ..topology import available_topologies
from ..training import FitConfig

#: Native side of datasets whose images are too small for VGG-16 (5 poolings need >= 32 px); conv6fc2 is
#: resized likewise, to the 32 px CIFAR inputs of the SD-SNN / DPAP network it follows.
_VGG_MIN_SIDE = 32
_MIN_SIDE_MODELS = ("vgg16", "conv6fc2")
_SMALL_DATASETS = {"digits": 8}

#: Largest ``t_max`` accepted. A run keeps about 25 KB per simulated step (measured on digits MLPs of 1 to 8
#: hidden layers: the test and validation curves, the monitors' per-step counts and the result.json text), so
#: 10,000 steps need about 250 MB beyond the model and data; the paper evaluates 64 (§3.1).
T_MAX_LIMIT = 10_000
#: Seeds are integers in [0, SEED_LIMIT): torch seeds are 64-bit and some stages seed with ``seed + 1``.
SEED_LIMIT = 2**63
#: Device types a run can use (``cpu``, ``cuda`` or ``cuda:N``).
DEVICE_TYPES = ("cpu", "cuda")

#: The fields that determine a trained ANN (the ANN stage); the others describe its conversion and evaluation.
ANN_STAGE_FIELDS = ("model", "model_options", "dataset", "image_size", "sparsity", "topology", "topology_options",
                    "train", "seed")
#: Config keys that say where or how fast a run was computed, not what was computed.
PLACEMENT_KEYS = ("device", "data_root", "download", "eval_batch_size", "chunk")
#: Config keys left out of a config's identity while unset, so that configs written before they existed keep
#: their identity (and a sweep its folder names).
_OMITTED_WHEN_UNSET = {"energy_model": None, "neurobench": False}


@dataclass
class RunConfig:
    """Everything ``run`` needs; ``to_dict`` / ``from_dict`` round-trip through JSON."""

    model: str = "mlp"
    dataset: str = "digits"
    method: str = "qcfs"
    sparsity: float = 0.0
    topology: str = "static"
    t_max: int = T_MAX
    seed: int = 0
    train: FitConfig = field(default_factory=lambda: FitConfig(epochs=30, lr=0.05, batch_size=64))
    model_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    topology_options: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    eval_batch_size: int = 256
    chunk: int = 8
    device: str = "cpu"
    e_mac_pj: float = E_MAC_PJ
    e_ac_pj: float = E_AC_PJ
    energy_model: str | None = None  # a named preset (energy.ENERGY_MODELS) sets both prices
    neurobench: bool = False  # add NeuroBench's metrics to result.json (a second simulation of the test set)

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = FitConfig(**self.train)
        if self.energy_model is not None:
            self._take_preset_prices()
        self.validate()

    def _take_preset_prices(self) -> None:
        """Set the prices from the preset ``energy_model``; prices that were set to something else are an error."""
        from ..energy import energy_model

        preset = energy_model(self.energy_model)
        for name, default in (("e_mac_pj", E_MAC_PJ), ("e_ac_pj", E_AC_PJ)):
            value, wanted = getattr(self, name), getattr(preset, name)
            if value not in (default, wanted):
                raise ValueError(f"energy model {self.energy_model!r} prices {name} at {wanted} pJ, but {name} is "
                                 f"{value}: give a named energy model or the two prices, not both")
            setattr(self, name, wanted)

    def energy(self):
        """The ``EnergyModel`` of the run: the named preset, or the two prices (``custom``)."""
        from ..energy import EnergyModel, energy_model

        return energy_model(self.energy_model) if self.energy_model else EnergyModel(self.e_mac_pj, self.e_ac_pj)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        for name, value, known in (("model", self.model, available_models()),
                                   ("dataset", self.dataset, available_datasets()),
                                   ("method", self.method, available_methods()),
                                   ("topology", self.topology, available_topologies())):
            if value not in known:
                raise ValueError(f"unknown {name} {value!r}; available: {', '.join(known)}")
        if not (isinstance(self.t_max, int) and self.t_max >= 1):
            raise ValueError(f"t_max must be an integer >= 1, got {self.t_max!r}")
        if self.t_max > T_MAX_LIMIT:
            raise ValueError(f"t_max must be at most {T_MAX_LIMIT} (about 25 KB of memory per step), "
                             f"got {self.t_max}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < SEED_LIMIT):
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        _check_device(self.device)
        if not (isinstance(self.sparsity, (int, float)) and 0.0 <= self.sparsity < 1.0):
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if self.eval_batch_size < 1 or self.chunk < 1:
            raise ValueError(f"eval_batch_size and chunk must be >= 1, got {self.eval_batch_size}, {self.chunk}")
        self.energy()  # the prices are checked where they are used: EnergyModel
        if needs_data_root(self.dataset) and self.data_root is None:
            raise ValueError(f"dataset {self.dataset!r} needs --data-root")

    def resolved_image_size(self) -> int | None:
        """``image_size``, or 32 for VGG-16 and conv6fc2 on a dataset whose images are smaller."""
        if self.image_size is not None:
            return self.image_size
        if self.model in _MIN_SIDE_MODELS and _SMALL_DATASETS.get(self.dataset, _VGG_MIN_SIDE) < _VGG_MIN_SIDE:
            return _VGG_MIN_SIDE
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ann_stage(self) -> dict[str, Any]:
        """The ANN-stage fields (``ANN_STAGE_FIELDS``) as plain values, ``image_size`` resolved."""
        stage = {name: self.to_dict()[name] for name in ANN_STAGE_FIELDS}
        stage["image_size"] = self.resolved_image_size()
        return stage

    def ann_stage_differences(self, other: RunConfig) -> list[str]:
        """``field: ours vs theirs`` for each ANN-stage field where ``other`` differs (empty when they agree)."""
        mine, theirs = self.ann_stage(), other.ann_stage()
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in ANN_STAGE_FIELDS if mine[k] != theirs[k]]

    def differences(self, other: RunConfig) -> list[str]:
        """``field: ours vs theirs`` for each field that changes what a run computes (placement keys such as
        ``device`` and ``chunk`` left out) where ``other`` differs; empty when they agree."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{k}: {mine[k]!r} vs {theirs[k]!r}" for k in mine if k not in PLACEMENT_KEYS and mine[k] != theirs[k]]

    def identity(self, *, ignore: tuple[str, ...] = ()) -> str:
        """Canonical JSON of this config without its placement keys (and ``ignore``): what the run computes,
        not where. A sweep names its folders by it; without the seed it is equal for repeats."""
        return RunConfig.identity_of(self.to_dict(), ignore=ignore)

    @staticmethod
    def identity_of(config: Mapping[str, Any], *, ignore: tuple[str, ...] = ()) -> str:
        """``identity`` of a config as stored in a result (a ``to_dict``), read as it is: it need not name a
        registered method or hold every field."""
        kept = {k: v for k, v in config.items() if k not in PLACEMENT_KEYS and k not in ignore
                and not (k in _OMITTED_WHEN_UNSET and v == _OMITTED_WHEN_UNSET[k])}
        return json.dumps(kept, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run config keys {unknown}")
        return cls(**data)


def _check_device(name: str) -> None:
    """Refuse a device string torch does not parse, or one of a type runs cannot use (``meta``, ...)."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {name!r}")
