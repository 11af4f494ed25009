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
``DIR/runs/.<name>.partial-*`` of a killed run. Two sweeps on one DIR therefore never run
the same configuration twice, and a killed sweep started again runs exactly the
incomplete ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import multiprocessing
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.selection import config_identity, select_best
from ..fileio import write_json_atomic, write_text_atomic
from ..methods import get_method
from ..training import FitConfig
from .config import RunConfig
from .store import RESULT_FILE

RUNS_DIR = "runs"
LOCKS_DIR = ".locks"
ERRORS_DIR = "errors"
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


def _axis(table: dict, key: str, where: str) -> list:
    values = table[key]
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}.{key} must be a non-empty list of values (e.g. {key} = [{values!r}]), "
                         f"got {values!r}")
    return values


def _product(table: dict, where: str, known: set[str] | None = None) -> list[dict[str, Any]]:
    """Every combination of the lists in ``table`` (sorted keys), as dicts."""
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table, got {table!r}")
    if known is not None and set(table) - known:
        raise ValueError(f"unknown keys {sorted(set(table) - known)} in {where}; known: {sorted(known)}")
    keys = sorted(table)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_axis(table, k, where) for k in keys))]


def expand_grid(spec: dict[str, Any]) -> list[RunConfig]:
    """The configurations of a parsed sweep file, in a fixed order, duplicates removed."""
    unknown = sorted(set(spec) - {"grid", "settings"})
    if unknown:
        raise ValueError(f"unknown top-level tables {unknown} in the sweep file; expected [grid] and [settings]")
    grid = dict(spec.get("grid", {}))
    settings = dict(spec.get("settings", {}))
    both = sorted(set(grid) & set(settings))
    if both:
        raise ValueError(f"{both} appear both in [grid] and in [settings]")
    for key in settings:
        if key not in _SCALAR_FIELDS:
            raise ValueError(f"unknown setting {key!r}; settings are RunConfig fields: {sorted(_SCALAR_FIELDS)}")
    train_grid = _product(grid.pop("train", {}), "grid.train", _TRAIN_FIELDS)
    options = {name: grid.pop(name, {}) for name in OPTION_TABLES}
    for key in grid:
        if key not in _SCALAR_FIELDS:
            raise ValueError(f"unknown grid axis {key!r}; axes are RunConfig fields: {sorted(_SCALAR_FIELDS)}")
    order = [k for k in AXIS_ORDER if k in grid] + sorted(k for k in grid if k not in AXIS_ORDER)
    axes = [_axis(grid, k, "grid") for k in order]
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
        per_name = {table: _product(options[table].get(base.get(axis, RunConfig.__dataclass_fields__[axis].default),
                                                      {}), f"grid.{table}")
                    for table, axis in OPTION_TABLES.items()}
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
    """Parse a sweep TOML file and expand its grid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    try:
        spec = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML: {err}") from None
    configs = expand_grid(spec)
    if not configs:
        raise ValueError(f"{path} describes no configuration")
    return configs


def run_name(config: dict[str, Any]) -> str:
    """Folder name of a configuration: readable parts and a 10-hex-digit hash of ``config_identity``."""
    digest = hashlib.sha256(config_identity(config).encode()).hexdigest()[:10]
    kind = "dense" if config["sparsity"] == 0 else f"{config['topology']}{config['sparsity']:g}"
    return f"{config['model']}-{config['dataset']}-{config['method']}-{kind}-seed{config['seed']}-{digest}"


# -- running one configuration ----------------------------------------------------------------------


@contextmanager
def config_lock(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` for the block; yields False when another process holds it
    and ``wait`` is False. The kernel drops the lock when its process dies."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)  # releases the lock


def remove_leftovers(runs_dir: Path, name: str) -> list[Path]:
    """Delete the staging folders ``.<name>.partial-*`` a killed run left; call with the config's lock held."""
    removed = sorted(runs_dir.glob(f".{name}.partial-*"))
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def run_configuration(config: dict[str, Any], out: str, name: str, wait: bool = False) -> tuple[str, str | None]:
    """Run one configuration of the sweep in ``out`` unless it is complete or another process holds it.

    Returns (status, error) with status ``"ran"``, ``"complete"``, ``"busy"`` or ``"failed"``.
    """
    from .runner import run

    out_dir = Path(out)
    runs_dir, error_file = out_dir / RUNS_DIR, out_dir / ERRORS_DIR / f"{name}.txt"
    with config_lock(out_dir / LOCKS_DIR / f"{name}.lock", wait) as held:
        if not held:
            return "busy", None
        remove_leftovers(runs_dir, name)
        if (runs_dir / name / RESULT_FILE).is_file():
            return "complete", None
        try:
            run(RunConfig.from_dict(config), runs_dir / name, progress=False)
        except Exception as err:  # one diverging configuration must not stop the sweep
            message = f"{type(err).__name__}: {err}"
            write_text_atomic(error_file, message + "\n")
            return "failed", message
        error_file.unlink(missing_ok=True)
        return "ran", None


def init_worker() -> None:
    """Per-process setup of a sweep worker: one torch thread (runs are repeatable and do not
    oversubscribe the cores) and the fixed mmap threshold of the CLI."""
    import torch

    from ..allocator import fix_mmap_threshold

    torch.set_num_threads(1)
    fix_mmap_threshold()


# -- the sweep --------------------------------------------------------------------------------------


@dataclass
class SweepSummary:
    """What one ``sweep`` call did, by configuration name."""

    total: int
    ran: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed and len(self.ran) + len(self.complete) == self.total

    def line(self) -> str:
        return (f"{self.total} configurations: {len(self.ran)} ran, {len(self.complete)} already complete, "
                f"{len(self.failed)} failed")


Reporter = Callable[[str, str, float], None]


def sweep(configs: list[RunConfig], out: str | os.PathLike, *, workers: int = 1, backend: str = "local",
          report: Reporter | None = None) -> SweepSummary:
    """Run every configuration not yet complete in ``out`` (see module doc) and write ``out/best.json``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    out = Path(out).resolve()
    (out / RUNS_DIR).mkdir(parents=True, exist_ok=True)
    named = {run_name(c.to_dict()): c.to_dict() for c in configs}
    summary = SweepSummary(total=len(named))
    todo = []
    for name, config in named.items():
        if (out / RUNS_DIR / name / RESULT_FILE).is_file():
            with config_lock(out / LOCKS_DIR / f"{name}.lock", wait=False) as held:
                if held:
                    remove_leftovers(out / RUNS_DIR, name)
            summary.complete.append(name)
        else:
            todo.append((name, config))
    execute = _run_ray if backend == "ray" else _run_local
    started = time.perf_counter()

    def record(name: str, status: str, error: str | None) -> None:
        if status == "failed":
            summary.failed[name] = error or ""
        else:
            (summary.ran if status == "ran" else summary.complete).append(name)
        if report is not None:
            report(name, status, time.perf_counter() - started)

    execute(todo, out, workers, record)
    write_best(out)
    return summary


def _run_local(todo: list[tuple[str, dict]], out: Path, workers: int,
               record: Callable[[str, str, str | None], None]) -> None:
    """A forkserver process pool (workers forked from one clean process that imported the runner once);
    configurations another process holds are waited for at the end."""
    if not todo:
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "sparse_convert.experiments.runner"])
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=context,
                             initializer=init_worker) as pool:
        batch, wait = todo, False
        while batch:
            futures = {pool.submit(run_configuration, config, str(out), name, wait): (name, config)
                       for name, config in batch}
            batch, wait = [], True  # a second round waits for the locks other processes held
            for future in as_completed(futures):
                status, error = future.result()
                if status == "busy":
                    batch.append(futures[future])
                else:
                    record(futures[future][0], status, error)


def _ray_trial(params: dict[str, Any], todo: list[tuple[str, dict]], out: str) -> dict[str, Any]:
    """A Ray Tune trial: one configuration of the grid, run exactly as the local backend runs it."""
    init_worker()
    name, config = todo[params["index"]]
    status, error = run_configuration(config, out, name, wait=True)
    return {"name": name, "status": status, "error": error or ""}


def _run_ray(todo: list[tuple[str, dict]], out: Path, workers: int,
             record: Callable[[str, str, str | None], None]) -> None:
    """Ray Tune over the indices of ``todo``: one CPU per trial, ``workers`` at a time; joins the cluster
    named by ``RAY_ADDRESS`` when set (``out`` must then be on a file system every node sees)."""
    if not todo:
        return
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError("--backend ray needs Ray Tune: pip install 'sparse-convert[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        cluster = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, **cluster)
    storage = out / ".tune"  # Tune's own bookkeeping (hidden: collect_results skips it); results are in out/runs
    try:
        trainable = tune.with_resources(tune.with_parameters(_ray_trial, todo=todo, out=str(out)), {"cpu": 1})
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(todo))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=workers, reuse_actors=True),  # one import per worker
            run_config=tune.RunConfig(storage_path=str(storage), name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                                      verbose=0),
        )
        grid = tuner.fit()
        for result in grid:
            if result.error is not None:
                index = result.config["index"]
                record(todo[index][0], "failed", f"Ray trial error: {result.error}")
            else:
                m = result.metrics
                record(m["name"], m["status"], m["error"] or None)
    finally:
        if started_here:
            ray.shutdown()


# -- collecting results ------------------------------------------------------------------------------


def collect_results(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete run under ``folder`` (each ``result.json`` outside hidden folders), sorted by path."""
    from .runner import load_result

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist")
    paths = sorted(p for p in folder.rglob(RESULT_FILE)
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return [load_result(p) for p in paths]


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
