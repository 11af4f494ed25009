"""A run's result file as a typed value: ``RunResult`` is ``result.json``, ``AnnResult`` an ANN stage's
``ann_result.json``. Both are read, checked and written here and nowhere else.

On disk a result is the JSON object ``to_dict`` gives: ``format`` and ``version`` first, then the fields
in the order of the dataclass (``windows`` only for window methods), then any keys this version does not
know (kept in ``extra``, so that a newer file's additions survive a round trip). The blocks are plain JSON
objects; the ``TypedDict`` classes below name the keys they hold.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypedDict

from ..fileio import read_json, write_json_atomic
from ..typecheck import check_options

if typing.TYPE_CHECKING:
    from .config import RunConfig

RESULT_FILE = "result.json"
RESULT_FORMAT = "sparse-convert/result"
ANN_RESULT_FILE = "ann_result.json"
ANN_RESULT_FORMAT = "sparse-convert/ann-result"


class ResultConfig(TypedDict):
    """The ``config`` block: ``RunConfig.to_dict()``. These keys are the ones every result must hold."""

    model: str
    dataset: str
    method: str
    sparsity: float
    topology: str
    seed: int
    t_max: int


class _DensityRequired(TypedDict):
    network: float


class Density(_DensityRequired, total=False):
    """The ``density`` block (``topology.density(...).to_dict()``): ``network`` is required."""

    layers: dict[str, float]
    links: int
    possible_links: int


class _PerStepRequired(TypedDict):
    t: list[int]
    accuracy: list[float | None]
    masfr: list[float | None]
    energy_uj: list[float | None]


class PerStep(_PerStepRequired, total=False):
    """The ``per_step`` block: the test-set curves, index ``t - 1``; a window method has values only at its
    windows (null elsewhere). ``t``, ``accuracy``, ``masfr`` and ``energy_uj`` are required; ``<kind>_ops``
    curves of other operations may follow ``mac`` and ``ac``."""

    mac: list[float | None]
    ac: list[float | None]


class ValCurve(TypedDict):
    """The ``per_step_val`` block: validation accuracy over t."""

    t: list[int]
    accuracy: list[float | None]


class Windows(TypedDict):
    """The ``windows`` block of a window method: the window sizes run and the steps each simulated."""

    t: list[int]
    steps_simulated: list[int]
    note: str


class _ChosenRequired(TypedDict):
    t: int
    rule: str
    accuracy: float
    energy_uj: float


class Chosen(_ChosenRequired, total=False):
    """The ``chosen`` block: the T the run reports, the rule that chose it and the numbers there (``t``,
    ``rule``, ``accuracy`` and ``energy_uj`` are required)."""

    masfr: float
    mac: float
    ac: float
    val_accuracy: float | None


#: The blocks whose keys are checked on reading, with the ``TypedDict`` that names them.
_BLOCKS: dict[str, Any] = {"config": ResultConfig, "density": Density, "per_step": PerStep, "chosen": Chosen}
#: The ``per_step`` curves that must be as long as ``t`` and, unless the method runs windows, have no null.
_CURVES = ("accuracy", "masfr", "energy_uj")


def _plain(hint: Any) -> Any:
    """``hint`` for ``typecheck.matches``: a ``TypedDict`` block is checked as a mapping (its keys apart)."""
    if typing.is_typeddict(hint):
        return dict
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return functools.reduce(operator.or_, map(_plain, typing.get_args(hint)))
    return hint


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The declared type of each key of document class ``cls`` (a result dataclass or a block's ``TypedDict``)."""
    hints = typing.get_type_hints(cls)
    if typing.is_typeddict(cls):
        return {name: _plain(hint) for name, hint in hints.items()}
    return {f.name: _plain(hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra"}


@functools.cache
def _required(cls: type) -> list[str]:
    """The keys a document of class ``cls`` must hold, in declaration order."""
    if typing.is_typeddict(cls):
        return [name for name in typing.get_type_hints(cls) if name in cls.__required_keys__]
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _read_document(path: str | os.PathLike, folder_file: str) -> tuple[Path, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / folder_file
    return path, read_json(path)


def _check_top(cls: type, data: Any, where: str, what: str) -> None:
    """The format tag, version, required keys and field types of document ``data`` (read from ``where``)."""
    if not isinstance(data, dict) or data.get("format") != cls.FORMAT:
        raise ValueError(f"{where} is not a {what}")
    version = data.get("version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > cls.VERSION:
        raise ValueError(f"{where} is a {what} of version {version}; this sparse-convert reads version "
                         f"{cls.VERSION} at most: upgrade it")
    missing = [key for key in _required(cls) if key not in data]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}: not a complete {what}")
    check_options(data, _hints(cls), lambda key: f"{key} in {where}")


def _split(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Constructor keywords of ``cls`` from document ``data``: its fields, and the unknown keys as ``extra``."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    known = {k: v for k, v in data.items() if k in names}
    return {**known, "extra": {k: v for k, v in data.items() if k not in names and k != "format"}}


def _document(obj: Any, omit_none: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"format": obj.FORMAT}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == "extra" or (f.name in omit_none and value is None):
            continue
        out[f.name] = value
    return {**out, **{k: v for k, v in obj.extra.items() if k not in out}}


@dataclass(kw_only=True)
class RunResult:
    """One run's ``result.json``: what ``run`` measured, its config and where it ran.

    ``load`` reads and checks a file (errors name the file and the field), ``save`` writes one atomically,
    ``to_dict`` is the JSON document (the analysis functions take it). The blocks are shared, not copied.
    """

    FORMAT: ClassVar[str] = RESULT_FORMAT
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "sparse-convert result"

    version: int = 1
    config: ResultConfig
    time_mode: Literal["integrate", "window"]
    ann_accuracy: float
    ann_val_accuracy: float | None = None
    converted_ann_accuracy: float | None = None
    density: Density
    topology: dict[str, Any] | None = None
    per_step: PerStep
    per_step_val: ValCurve | None = None
    windows: Windows | None = None  # window methods only; not written when None
    saturation: dict[str, Any] | None = None
    chosen: Chosen
    neurons: int | None = None
    images: int | None = None
    roles: dict[str, str] | None = None
    layer_events: dict[str, float] | None = None
    per_layer: dict[str, dict[str, Any]] | None = None
    neurobench: dict[str, Any] | None = None
    energy_model: dict[str, Any] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def from_dict(cls, data: Any, where: str = "the result") -> RunResult:
        """Check document ``data`` (``where`` names it in the errors) and build the result."""
        check_result(data, where)
        return cls(**_split(cls, data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunResult:
        """Read ``path`` (a ``result.json``, or a folder holding one); ``ValueError`` / ``FileNotFoundError``
        naming the file when it is unreadable, not a result or lacks a field the analysis reads."""
        path, data = _read_document(path, RESULT_FILE)
        return cls.from_dict(data, str(path))

    @classmethod
    def collect(cls, folder: str | os.PathLike, skipped: dict[Path, str] | None = None) -> list[RunResult]:
        """Every complete run under ``folder`` (each ``result.json`` outside hidden folders), sorted by path.

        An unreadable ``result.json`` raises ``ValueError``; with ``skipped``, it is recorded there instead
        (path → what is wrong) and the others are read.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"results folder {folder} does not exist")
        paths = sorted(p for p in folder.rglob(RESULT_FILE)
                       if not any(part.startswith(".") for part in p.relative_to(folder).parts))
        results = []
        for path in paths:
            try:
                results.append(cls.load(path))
            except (ValueError, OSError) as err:
                if skipped is None:
                    raise
                skipped[path] = str(err)
        return results

    def to_dict(self) -> dict[str, Any]:
        """The ``result.json`` document."""
        return _document(self, omit_none=("windows",))

    def save(self, path: str | os.PathLike) -> Path:
        """Check the result as ``load`` would and write it to ``path`` atomically; returns ``path``."""
        path = Path(path)
        document = self.to_dict()
        check_result(document, str(path))
        write_json_atomic(path, document)
        return path

    def run_config(self) -> RunConfig:
        """The config as a ``RunConfig`` (``ValueError`` / ``TypeError`` when it names an unknown method, ...)."""
        from .config import RunConfig

        return RunConfig.from_dict(dict(self.config))


def check_result(data: Any, where: str = "the result") -> None:
    """Raise ``ValueError`` naming ``where`` and the field unless ``data`` is a result document holding what the
    analysis reads, of the right types, with per_step curves of one length and no gap in an integrating one."""
    what = RunResult.WHAT
    _check_top(RunResult, data, where, what)
    for block, schema in _BLOCKS.items():
        values = data[block]
        missing = [key for key in _required(schema) if key not in values]
        if missing:
            raise ValueError(f"{where} lacks {', '.join(f'{block}.{k}' for k in missing)}: not a complete {what}")
        check_options(values, _hints(schema), lambda key, block=block: f"{block}.{key} in {where}")
    per_step = data["per_step"]
    lengths = {key: len(per_step[key]) for key in ("t", *_CURVES)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}: the per_step lists differ in length ({lengths})")
    if data["time_mode"] != "window":  # only a window method's curves have gaps (T it did not run)
        for key in _CURVES:
            if None in per_step[key]:
                t = per_step["t"][per_step[key].index(None)]
                raise ValueError(f"{where}: per_step.{key} has no value at t = {t} (null), but "
                                 f"{data['time_mode']!r} results have one at every t")


@dataclass(kw_only=True)
class AnnResult:
    """An ANN stage's ``ann_result.json`` (``runner.train_stage``): the trained ANN's accuracies, density,
    topology summary and training time."""

    FORMAT: ClassVar[str] = ANN_RESULT_FORMAT
    VERSION: ClassVar[int] = 1
    WHAT: ClassVar[str] = "sparse-convert ANN-stage result"

    version: int = 1
    ann_stage: dict[str, Any]
    config: dict[str, Any]
    ann_accuracy: float
    ann_val_accuracy: float | None = None
    density: dict[str, Any] | None = None
    topology: dict[str, Any] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str = "the ANN-stage result") -> AnnResult:
        """Check document ``data`` (``where`` names it in the errors) and build the result."""
        _check_top(cls, data, where, cls.WHAT)
        return cls(**_split(cls, data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> AnnResult:
        """Read ``path`` (an ``ann_result.json``, or a folder holding one), naming it in the errors."""
        path, data = _read_document(path, ANN_RESULT_FILE)
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        """The ``ann_result.json`` document."""
        return _document(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result to ``path`` atomically; returns ``path``."""
        path = Path(path)
        write_json_atomic(path, self.to_dict())
        return path
