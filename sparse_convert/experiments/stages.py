"""The two stages of a sweep: each distinct ANN is trained once, then converted as many times as the grid asks.

* An **ANN stage** is everything that determines a trained ANN (``RunConfig.ann_stage``: model and
  its options, dataset and image size, sparsity, topology and its options, the training config,
  the seed; pretrained weights are a model option). It runs into ``DIR/anns/<name>/``:
  ``ann.safetensors``, ``ann.json`` and ``ann_result.json`` (moved in last).
* A **conversion stage** is one method with its options, ``t_max`` and the energy model, on one
  ANN. It runs into ``DIR/runs/<name>/result.json`` from the ANN stage's checkpoint, and gives
  the numbers ``sparse-convert run`` gives for the same configuration.

Both are complete iff their result file exists, run under an exclusive ``flock`` on
``DIR/.locks/<name>.lock`` (the kernel drops it when the process dies), and remove a killed
run's staging folders before they start. A conversion first makes sure its ANN is complete,
training it under the ANN's lock if no process has yet, so a conversion never depends on the
order in which an executor starts tasks; a conversion whose ANN failed is recorded as skipped
in ``DIR/errors/<name>.txt``, naming the ANN's error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean
from typing import Any

from ..fileio import write_text_atomic
from .config import RunConfig
from .result import ANN_RESULT_FILE, RESULT_FILE, AnnResult
from .store import remove_stale_stages

RUNS_DIR = "runs"
ANNS_DIR = "anns"
LOCKS_DIR = ".locks"
ERRORS_DIR = "errors"
#: ``[stages] convert``: every ANN, or per group only the ANN configuration with the best mean validation accuracy.
CONVERT_MODES = ("all", "best")
#: Task outcomes; ``unselected`` is a conversion of an ANN that ``convert = "best"`` did not pick.
STATUSES = ("ran", "complete", "busy", "failed", "skipped", "unselected")


def _kind(config: dict[str, Any]) -> str:
    return "dense" if config["sparsity"] == 0 else f"{config['topology']}{config['sparsity']:g}"


def run_name(config: dict[str, Any]) -> str:
    """Folder name of a conversion: readable parts and a 10-hex-digit hash of the config's identity
    (``RunConfig.identity_of``)."""
    digest = hashlib.sha256(RunConfig.identity_of(config).encode()).hexdigest()[:10]
    return f"{config['model']}-{config['dataset']}-{config['method']}-{_kind(config)}-seed{config['seed']}-{digest}"


def ann_name(config: dict[str, Any]) -> str:
    """Folder name of an ANN stage: readable parts and a 10-hex-digit hash of the ANN-stage fields."""
    stage = RunConfig.from_dict(config).ann_stage()
    digest = hashlib.sha256(json.dumps(stage, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:10]
    return f"{config['model']}-{config['dataset']}-{_kind(config)}-seed{config['seed']}-{digest}"


def ann_group(config: dict[str, Any]) -> tuple:
    """The group within which ``convert = "best"`` picks one ANN configuration: dataset, model, sparsity, topology."""
    return config["dataset"], config["model"], config["sparsity"], config["topology"]


def ann_candidate(config: dict[str, Any]) -> str:
    """An ANN configuration without its seed: the seeds of one candidate are averaged."""
    stage = dict(RunConfig.from_dict(config).ann_stage(), seed=None)
    return json.dumps(stage, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Task:
    """One unit of a sweep: an ANN stage (``kind="ann"``) or a conversion of the ANN named ``ann``.

    ``group`` lists the ANN stages whose results a conversion must see before it knows whether it
    is selected (``convert = "best"``); empty when every ANN is converted.
    """

    kind: str
    name: str
    config: dict[str, Any]
    ann: str | None = None
    group: tuple[tuple[str, dict[str, Any]], ...] = field(default=())

    @property
    def needs(self) -> tuple[str, ...]:
        """The ANN stages this task waits for."""
        if self.kind != "conversion":
            return ()
        return tuple(dict.fromkeys([self.ann, *(name for name, _ in self.group)]))


def plan(configs: list[RunConfig], convert: str = "all", share: bool = True) -> list[Task]:
    """The tasks of a grid: its distinct ANN stages first, then one conversion per configuration.

    With ``share=False`` there is no ANN stage: each conversion trains its own ANN (``run`` as a
    single command does, the ANN saved beside its result), which is what sharing saves.
    """
    if convert not in CONVERT_MODES:
        raise ValueError(f"[stages] convert must be one of {CONVERT_MODES}, got {convert!r}")
    dicts = [c.to_dict() for c in configs]
    if not share:
        return [Task("run", run_name(c), c) for c in dicts]
    anns: dict[str, dict[str, Any]] = {}
    for c in dicts:
        anns.setdefault(ann_name(c), c)
    groups: dict[tuple, list[tuple[str, dict[str, Any]]]] = {}
    for name, c in anns.items():
        groups.setdefault(ann_group(c), []).append((name, c))
    tasks = [Task("ann", name, c) for name, c in anns.items()]
    for c in dicts:
        group = tuple(groups[ann_group(c)]) if convert == "best" else ()
        tasks.append(Task("conversion", run_name(c), c, ann=ann_name(c), group=group))
    return tasks


# -- running one task ---------------------------------------------------------------------------------


@contextmanager
def stage_lock(path: Path, wait: bool) -> Iterator[bool]:
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


def error_path(out: Path, name: str, ann: bool = False) -> Path:
    """Where the error of task ``name`` is recorded: ``errors/<name>.txt``, ``errors/anns/<name>.txt`` for an
    ANN stage."""
    return out / ERRORS_DIR / (ANNS_DIR if ann else "") / f"{name}.txt"


def record_failure(out: Path, name: str, message: str, ann: bool = False) -> None:
    """Write the error of task ``name`` (see ``error_path``)."""
    write_text_atomic(error_path(out, name, ann), message + "\n")


def error_of(out: Path, name: str, ann: bool = False) -> str | None:
    """The recorded error of task ``name`` in sweep folder ``out``, if any."""
    path = error_path(out, name, ann)
    return path.read_text().strip() if path.is_file() else None


def _guarded(out: Path, name: str, folder: Path, done_file: str, wait: bool, body, ann: bool = False
             ) -> tuple[str, str | None]:
    """Run ``body()`` into ``folder`` under the stage's lock unless it is complete or busy."""
    with stage_lock(out / LOCKS_DIR / f"{name}.lock", wait) as held:
        if not held:
            return "busy", None
        remove_stale_stages(folder)
        if (folder / done_file).is_file():
            return "complete", None
        try:
            body()
        except Exception as err:  # one diverging configuration must not stop the sweep
            message = f"{type(err).__name__}: {err}"
            record_failure(out, name, message, ann)
            return "failed", message
        error_path(out, name, ann).unlink(missing_ok=True)
        return "ran", None


def run_ann_task(config: dict[str, Any], out: Path, name: str, wait: bool = False) -> tuple[str, str | None]:
    """The ANN stage ``name`` of the sweep in ``out``."""
    from . import runner

    folder = out / ANNS_DIR / name
    return _guarded(out, name, folder, ANN_RESULT_FILE, wait,
                    lambda: runner.train_stage(RunConfig.from_dict(config), folder, progress=False), ann=True)


def _ensure_ann(out: Path, name: str, config: dict[str, Any]) -> str | None:
    """Make sure ANN stage ``name`` is complete (training it here if no process has); its error, if it failed."""
    if (out / ANNS_DIR / name / ANN_RESULT_FILE).is_file():
        return None
    recorded = error_of(out, name, ann=True)  # failed earlier in this sweep (a sweep forgets older ones at its start)
    if recorded is not None:
        return recorded
    status, error = run_ann_task(config, out, name, wait=True)
    if status == "failed":
        return error
    if not (out / ANNS_DIR / name / ANN_RESULT_FILE).is_file():  # another process failed it meanwhile
        return error_of(out, name, ann=True) or "the ANN stage did not complete"
    return None


def _selected(out: Path, task: Task) -> tuple[bool, str | None]:
    """Whether ``task``'s ANN is the group's best candidate (highest mean ANN validation accuracy over its
    seeds; the test set is never used); an error when the group has no usable ANN."""
    scores: dict[str, list[float]] = {}
    for name, config in task.group:
        if _ensure_ann(out, name, config) is not None:
            continue
        val = AnnResult.load(out / ANNS_DIR / name / ANN_RESULT_FILE).ann_val_accuracy
        if val is None:
            return True, None  # no validation split: nothing to select by, convert every ANN
        scores.setdefault(ann_candidate(config), []).append(float(val))
    if not scores:
        return False, "every ANN of its group failed"
    best = max(sorted(scores), key=lambda key: mean(scores[key]))
    return ann_candidate(task.config) == best, None


def run_task(task: Task, out: str | os.PathLike, wait: bool = False) -> tuple[str, str | None]:
    """Run one task of a sweep in ``out`` unless it is complete or another process holds it.

    Returns (status, error) with status in ``STATUSES``.
    """
    from . import runner

    out = Path(out)
    if task.kind == "ann":
        return run_ann_task(task.config, out, task.name, wait)
    folder = out / RUNS_DIR / task.name
    if task.kind == "run":  # no sharing: the conversion trains its own ANN
        return _guarded(out, task.name, folder, RESULT_FILE, wait,
                        lambda: runner.run(RunConfig.from_dict(task.config), folder, progress=False))
    if (folder / RESULT_FILE).is_file():
        return "complete", None
    ann_error = _ensure_ann(out, task.ann, task.config)
    if ann_error is not None:
        message = f"skipped: its ANN stage {task.ann} failed: {ann_error}"
        record_failure(out, task.name, message)
        return "skipped", message
    if task.group:
        selected, error = _selected(out, task)
        if error is not None:
            record_failure(out, task.name, f"skipped: {error}")
            return "skipped", f"skipped: {error}"
        if not selected:
            return "unselected", None
    checkpoint = out / ANNS_DIR / task.ann / "ann.safetensors"
    return _guarded(out, task.name, folder, RESULT_FILE, wait,
                    lambda: runner.run(RunConfig.from_dict(task.config), folder, ann_checkpoint=checkpoint,
                                       progress=False, save_ann=False))
