"""Sweep files: a TOML file names lists of values, their product is the grid (paper Appendix B, Table A1).

File format (``examples/sweep_digits.toml`` is a complete example)::

    [grid]                       # every value is a list: one axis of the grid
    model = ["mlp"]              # any RunConfig field: model, dataset, method, sparsity,
    method = ["qcfs", "snm"]     # topology, seed, t_max, image_size, ...
    sparsity = [0.0, 0.9]
    topology = ["cht"]           # for sparse runs; dense runs (sparsity 0) are always "static"
    seed = [0, 1, 2]

    [grid.train]                 # the ANN training stage (FitConfig): lr, batch_size, epochs, ...
    lr = [0.1, 0.001]

    [grid.model_options.mlp]     # options of one model, used only with it
    hidden = [[256, 256, 256]]
    [grid.method_options.qcfs]   # options of one method (Table A1's L is "levels")
    levels = [4, 8]
    [grid.topology_options.cht]  # options of one topology rule

    [settings]                   # single values shared by every run: where and how fast
    device = "cpu"

    [stages]                     # which ANNs are converted ("all" or "best"); share = false trains
    convert = "all"              # an ANN inside every conversion
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import read_text
from ..methods import get_method
from ..training import FitConfig
from ..typecheck import check_options, declared_types, describe, matches
from .config import RunConfig
from .stages import CONVERT_MODES

#: Option tables of the grid and the grid axis that names whose options they are.
OPTION_TABLES = {"model_options": "model", "method_options": "method", "topology_options": "topology"}
#: Grid axes in the order they vary (slowest first); other RunConfig fields follow, sorted.
AXIS_ORDER = ("model", "dataset", "method", "sparsity", "topology", "seed")
_NESTED = {"train", *OPTION_TABLES}
_SCALAR_FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - _NESTED
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(FitConfig)}


# -- the grid -------------------------------------------------------------------------------------


def _example(default: Any) -> str:
    """A field's default written as a TOML value, or ``...`` when it has none worth showing."""
    if isinstance(default, (bool, int, float, str)):
        return json.dumps(default)
    return "..."


def _table(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a table ([{where}] followed by key = value lines), got {value!r}")
    return value


def _axis(table: dict, key: str, where: str, types: dict[str, Any] | None = None,
          defaults: dict[str, Any] | None = None) -> list:
    """``table[key]``, checked to be a non-empty list whose values have the type ``types`` declares for ``key``."""
    values = table[key]
    example = _example((defaults or {}).get(key, values if not isinstance(values, list) else None))
    if not isinstance(values, list):
        raise ValueError(f"{where}.{key} must be a non-empty list of values (e.g. {key} = [{example}]), "
                         f"got {values!r}")
    if not values:
        raise ValueError(f"{where}.{key} is an empty list: give it at least one value (e.g. {key} = [{example}])")
    hint = (types or {}).get(key)
    if hint is not None and not matches(values, list[hint]):
        raise ValueError(f"{where}.{key} must be {describe(list[hint])}, got {values!r}")
    return values


def _product(table: dict, where: str, known: set[str] | None = None, types: dict[str, Any] | None = None,
             defaults: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the lists in ``table`` (sorted keys), as dicts."""
    _table(table, where)
    if known is not None and set(table) - known:
        raise ValueError(f"unknown keys {sorted(set(table) - known)} in {where}; known: {sorted(known)}")
    keys = sorted(table)
    axes = (_axis(table, k, where, types, defaults) for k in keys)
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]


def _defaults(cls: type) -> dict[str, Any]:
    """The plain default value of each field of dataclass ``cls`` (fields with a factory left out)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def expand_grid(spec: dict[str, Any]) -> list[RunConfig]:
    """The configurations of a parsed sweep file, in a fixed order, duplicates removed."""
    unknown = sorted(set(spec) - {"grid", "settings", "stages"})
    if unknown:
        raise ValueError(f"unknown top-level tables {unknown} in the sweep file; expected [grid], [settings] "
                         "and [stages]")
    if not spec.get("grid"):
        raise ValueError("the sweep file has no [grid] axes, so nothing to sweep (one run is `sparse-convert run`)")
    grid = dict(_table(spec["grid"], "grid"))
    settings = dict(_table(spec.get("settings", {}), "settings"))
    both = sorted(set(grid) & set(settings))
    if both:
        raise ValueError(f"{both} appear both in [grid] and in [settings]")
    run_types, run_defaults = declared_types(RunConfig), _defaults(RunConfig)
    for key in settings:
        if key not in _SCALAR_FIELDS:
            raise ValueError(f"unknown setting {key!r}; settings are RunConfig fields: {sorted(_SCALAR_FIELDS)}")
    check_options(settings, run_types, lambda key: f"settings.{key}")
    train_grid = _product(grid.pop("train", {}), "grid.train", _TRAIN_FIELDS, declared_types(FitConfig),
                          dataclasses.asdict(_default_train()))
    options = {name: _table(grid.pop(name, {}), f"grid.{name}") for name in OPTION_TABLES}
    for key in grid:
        if key not in _SCALAR_FIELDS:
            raise ValueError(f"unknown grid axis {key!r}; axes are RunConfig fields: {sorted(_SCALAR_FIELDS)}")
    order = [k for k in AXIS_ORDER if k in grid] + sorted(k for k in grid if k not in AXIS_ORDER)
    axes = [_axis(grid, k, "grid", run_types, run_defaults) for k in order]
    for table, axis in OPTION_TABLES.items():
        named = set(grid.get(axis, [RunConfig.__dataclass_fields__[axis].default]))
        stray = sorted(set(options[table]) - named)
        if stray:
            raise ValueError(f"grid.{table} has options for {stray}, which grid.{axis} does not list")
    configs, seen = [], set()
    for combo in itertools.product(*axes):
        base = dict(settings, **dict(zip(order, combo)))
        if base.get("sparsity", 0.0) == 0:
            base["topology"] = "static"  # dense runs have no topology to evolve
        names = {table: base.get(axis, RunConfig.__dataclass_fields__[axis].default)
                 for table, axis in OPTION_TABLES.items()}
        per_name = {table: _product(options[table].get(name, {}), f"grid.{table}.{name}")
                    for table, name in names.items()}
        if base.get("sparsity", 0.0) == 0:
            per_name["topology_options"] = [{}]
        for train, model_opts, method_opts, topo_opts in itertools.product(
                train_grid, per_name["model_options"], per_name["method_options"], per_name["topology_options"]):
            config = RunConfig(**base, train=dataclasses.replace(_default_train(), **train),
                               model_options=model_opts, method_options=method_opts, topology_options=topo_opts)
            key = config.identity()
            if key not in seen:
                get_method(config.method)(**method_opts)  # unknown method options fail here, before any run
                seen.add(key)
                configs.append(config)
    return configs


def _default_train() -> FitConfig:
    """RunConfig's default ANN training stage; ``[grid.train]`` replaces the fields it names."""
    return RunConfig.__dataclass_fields__["train"].default_factory()


def load_sweep(path: str | os.PathLike) -> list[RunConfig]:
    """Parse a sweep TOML file and expand its grid; every error names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    try:
        spec = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    try:
        configs = expand_grid(spec)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not configs:
        raise ValueError(f"{path} describes no configuration")
    return configs


@dataclass
class SweepOptions:
    """The ``[stages]`` table of a sweep file: which ANNs are converted, and whether ANNs are shared."""

    convert: str = "all"
    share: bool = True

    def __post_init__(self) -> None:
        if self.convert not in CONVERT_MODES:
            raise ValueError(f"stages.convert must be one of {CONVERT_MODES}, got {self.convert!r}")
        if not isinstance(self.share, bool):
            raise ValueError(f"stages.share must be true or false, got {self.share!r}")


def load_sweep_options(path: str | os.PathLike) -> SweepOptions:
    """The ``[stages]`` table of sweep file ``path`` (defaults where it has none)."""
    spec = tomllib.loads(read_text(Path(path)))
    table = spec.get("stages", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [stages] must be a table, got {table!r}")
    unknown = sorted(set(table) - {f.name for f in dataclasses.fields(SweepOptions)})
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown} in [stages]; known: convert, share")
    try:
        return SweepOptions(**table)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
