"""One run's configuration: what to train, how sparse, which conversion, how long to simulate."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data import available_datasets
from ..defaults import E_AC_PJ, E_MAC_PJ, T_MAX
from ..methods import available_methods
from ..models import available_models
from ..topology import available_topologies
from ..training import FitConfig

#: Native side of datasets whose images are too small for VGG-16 (5 poolings need >= 32 px).
_VGG_MIN_SIDE = 32
_SMALL_DATASETS = {"digits": 8}


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

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = FitConfig(**self.train)
        self.validate()

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
        if not (isinstance(self.sparsity, (int, float)) and 0.0 <= self.sparsity < 1.0):
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity!r}")
        if self.eval_batch_size < 1 or self.chunk < 1:
            raise ValueError(f"eval_batch_size and chunk must be >= 1, got {self.eval_batch_size}, {self.chunk}")
        for name in ("e_mac_pj", "e_ac_pj"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.dataset != "digits" and self.data_root is None:
            raise ValueError(f"dataset {self.dataset!r} needs --data-root")

    def resolved_image_size(self) -> int | None:
        """``image_size``, or 32 for VGG-16 on a dataset whose images are smaller."""
        if self.image_size is not None:
            return self.image_size
        if self.model == "vgg16" and _SMALL_DATASETS.get(self.dataset, _VGG_MIN_SIDE) < _VGG_MIN_SIDE:
            return _VGG_MIN_SIDE
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown run config keys {unknown}")
        return cls(**data)
