"""Grid search (paper Appendix B, Table A1): a TOML file names lists of values, their product is the grid,
and every configuration runs once into ``DIR/runs/<name>/``, locally or on Ray Tune.

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

Resuming and concurrency: a configuration's folder name is readable parts plus a hash of
its canonical config (without the placement keys ``selection.PLACEMENT_KEYS``), so the
same configuration always lands in the same folder. It is complete iff its
``result.json`` exists (the runner moves it in last). Before running one, a process takes
an exclusive ``flock`` on ``DIR/.locks/<name>.lock`` (released by the kernel when the
process dies, so a SIGKILL leaves no stale lock) and removes the staging leftovers
``DIR/runs/.<name>.partial-*`` of a killed run (``store.remove_stale_stages``). Two sweeps
on one DIR therefore never run the same configuration twice, and a killed sweep started
again runs exactly the incomplete ones. Each configuration runs in a worker process of its
own: a worker that dies fails only its configuration, and workers die with their sweep.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.selection import config_identity, select_best
from ..fileio import read_json, read_text, write_json_atomic
from ..methods import get_method
from ..training import FitConfig
from ..typecheck import check_options, declared_types, describe, matches
from .config import RunConfig
from .execution import init_worker, run_local, run_ray  # noqa: F401  (init_worker: sweep workers' setup)
from .stages import (  # noqa: F401  (ann_name, run_name, stage_lock, run_task: the sweep's public names)
    ANN_RESULT_FILE,
    ANNS_DIR,
    CONVERT_MODES,
    ERRORS_DIR,
    LOCKS_DIR,
    RUNS_DIR,
    Task,
    ann_name,
    error_path,
    plan,
    run_name,
    run_task,
    stage_lock,
)
from .store import RESULT_FILE

BEST_FILE = "best.json"
BACKENDS = ("local", "ray")

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
            key = config_identity(config.to_dict())
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


# -- the sweep --------------------------------------------------------------------------------------


@dataclass
class StageSummary:
    """Outcomes of one stage's tasks in one ``sweep`` call, by task name."""

    total: int = 0
    ran: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    unselected: list[str] = field(default_factory=list)

    def add(self, name: str, status: str, error: str | None) -> None:
        if status in ("failed", "skipped"):
            getattr(self, status)[name] = error or ""
        else:
            getattr(self, status).append(name)

    def counts(self) -> str:
        parts = [f"{len(self.ran)} ran", f"{len(self.complete)} already complete", f"{len(self.failed)} failed"]
        parts += [f"{len(self.skipped)} skipped"] if self.skipped else []
        parts += [f"{len(self.unselected)} not selected"] if self.unselected else []
        return ", ".join(parts)


@dataclass
class SweepSummary:
    """What one ``sweep`` call did: the ANN stages (none without sharing) and the conversions."""

    total: int
    anns: StageSummary = field(default_factory=StageSummary)
    conversions: StageSummary = field(default_factory=StageSummary)

    @property
    def failed(self) -> dict[str, str]:
        return {**self.anns.failed, **self.conversions.failed, **self.conversions.skipped}

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        if not self.anns.total:
            return f"{self.total} configurations: {self.conversions.counts()}"
        return (f"{self.total} configurations: {self.anns.total} ANN trainings ({self.anns.counts()}), "
                f"conversions: {self.conversions.counts()}")


def dry_run_line(tasks: list[Task], total: int, out: str | os.PathLike | None = None) -> str:
    """``N configurations: A ANN trainings, C conversions``, with how many are already complete in ``out``."""
    anns = [t for t in tasks if t.kind == "ann"]
    conversions = [t for t in tasks if t.kind != "ann"]
    line = f"{total} configurations: {len(anns)} ANN trainings, {len(conversions)} conversions"
    if any(t.group for t in conversions):
        line += " (at most: convert = best converts one ANN configuration per group)"
    if out is not None:
        done = sum((Path(out) / ANNS_DIR / t.name / ANN_RESULT_FILE).is_file() for t in anns)
        done_c = sum((Path(out) / RUNS_DIR / t.name / RESULT_FILE).is_file() for t in conversions)
        if done or done_c:
            line += f" ({done} ANN trainings and {done_c} conversions already complete)"
    return line


Reporter = Callable[[str, str, float], None]


def sweep(configs: list[RunConfig], out: str | os.PathLike, *, workers: int = 1, backend: str = "local",
          report: Reporter | None = None, options: SweepOptions | None = None, cpus_per_trial: float = 1,
          gpus_per_trial: float = 0) -> SweepSummary:
    """Run every stage not yet complete in ``out`` (see ``stages``) and write ``out/best.json``."""
    options = options or SweepOptions()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "local" and (cpus_per_trial != 1 or gpus_per_trial):
        raise ValueError("--cpus-per-trial and --gpus-per-trial are Ray options (--backend ray); the local "
                         "backend runs --workers processes of one thread each, on the configured device")
    if cpus_per_trial <= 0 or gpus_per_trial < 0:
        raise ValueError(f"cpus per trial must be > 0 and GPUs per trial >= 0, got {cpus_per_trial}, "
                         f"{gpus_per_trial}")
    out = Path(out).resolve()
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    tasks = plan(configs, options.convert, options.share)
    summary = SweepSummary(total=len(configs))
    for task in tasks:
        stage = summary.anns if task.kind == "ann" else summary.conversions
        stage.total += 1
        if task.kind == "ann" and not (out / ANNS_DIR / task.name / ANN_RESULT_FILE).is_file():
            error_path(out, task.name, ann=True).unlink(missing_ok=True)  # retried now: forget the old error
    started = time.perf_counter()

    def record(task: Task, status: str, error: str | None) -> None:
        (summary.anns if task.kind == "ann" else summary.conversions).add(task.name, status, error)
        if report is not None:
            report(task.name, status, time.perf_counter() - started)

    if backend == "ray":
        run_ray(tasks, out, workers, record, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial)
    else:
        run_local(tasks, out, workers, record)
    write_best(out)
    return summary


# -- collecting results ------------------------------------------------------------------------------


def collect_results(folder: str | os.PathLike, skipped: dict[Path, str] | None = None) -> list[dict[str, Any]]:
    """Every complete run under ``folder`` (each ``result.json`` outside hidden folders), sorted by path.

    An unreadable ``result.json`` raises ``ValueError``; with ``skipped``, it is recorded there instead
    (path → what is wrong) and the others are read.
    """
    from .runner import load_result

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob(RESULT_FILE)
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    results = []
    for path in paths:
        try:
            results.append(load_result(path))
        except (ValueError, OSError) as err:
            if skipped is None:
                raise
            skipped[path] = str(err)
    return results


def stage_table(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Per stage of the sweep in ``folder``: how many tasks are complete, failed and skipped, and the wall time
    their complete runs spent (ANN: training; conversion: preparation and evaluation), from the files the
    sweep left. Empty when ``folder`` is not a sweep folder."""
    from .runner import load_result

    folder = Path(folder)
    if not any((folder / sub).is_dir() for sub in (ANNS_DIR, RUNS_DIR, ERRORS_DIR)):
        return []
    anns = sorted((folder / ANNS_DIR).glob(f"*/{ANN_RESULT_FILE}"))
    runs = sorted((folder / RUNS_DIR).glob(f"*/{RESULT_FILE}"))
    ann_errors = list((folder / ERRORS_DIR / ANNS_DIR).glob("*.txt"))
    errors = [p.read_text() for p in (folder / ERRORS_DIR).glob("*.txt")]
    timings = [load_result(p).get("timing", {}) for p in runs]
    convert_s = sum(float(t.get("prepare_s", 0.0)) + float(t.get("evaluate_s", 0.0)) for t in timings)
    if not anns:  # without sharing, each run trained its own ANN
        convert_s += sum(float(t.get("train_s", 0.0)) for t in timings)
    rows = [{"stage": "conversion", "complete": len(runs), "failed": sum(not e.startswith("skipped") for e in errors),
             "skipped": sum(e.startswith("skipped") for e in errors), "wall_s": round(convert_s, 1)}]
    if anns or ann_errors:
        train_s = sum(float(read_json(p).get("timing", {}).get("train_s", 0.0)) for p in anns)
        rows.insert(0, {"stage": "ANN training", "complete": len(anns), "failed": len(ann_errors), "skipped": 0,
                        "wall_s": round(train_s, 1)})
    return rows


def best_configurations(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``best.json`` document: per group, the configuration with the highest mean validation accuracy."""
    groups = []
    for selection in select_best(results):
        entry = selection.to_dict()
        entry["runs"] = [run_name(r["config"]) for r in selection.runs]
        groups.append(entry)
    return {"rule": "highest mean validation accuracy over seeds (chosen.val_accuracy, else ann_val_accuracy); "
                    "the test set is never used", "groups": groups}


def write_best(out: str | os.PathLike) -> Path | None:
    """Write ``out/best.json`` from the complete runs under ``out/runs``; None when there are none."""
    results = collect_results(Path(out) / RUNS_DIR)
    if not results:
        return None
    path = Path(out) / BEST_FILE
    write_json_atomic(path, best_configurations(results))
    return path


def print_progress(name: str, status: str, elapsed_s: float) -> None:
    """A ``Reporter`` that prints one line per finished configuration."""
    print(f"[{elapsed_s:7.1f} s] {status:8s} {name}", file=sys.stderr, flush=True)
