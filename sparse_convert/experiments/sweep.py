"""Grid search (paper Appendix B, Table A1): run every task of a sweep file's grid, resumably, locally or
on Ray Tune.

The grid comes from ``grid.load_sweep``; ``stages.plan`` turns it into tasks (each distinct ANN trained
once, then one conversion per configuration, see ``stages``); ``execution`` runs them; ``collection``
reads the folder back (``best.json``, the report's stage table).

Resuming and concurrency: a task's folder name is readable parts plus a hash of its canonical
config (``RunConfig.identity``: without the placement keys ``config.PLACEMENT_KEYS``), so the same
task always lands in the same folder. It is complete iff its result file exists (moved in last). Before running
one, a process takes an exclusive ``flock`` on ``DIR/.locks/<name>.lock`` (released by the kernel
when the process dies, so a SIGKILL leaves no stale lock) and removes the staging leftovers of a
killed run (``store.remove_stale_stages``). Two sweeps on one DIR therefore never run the same
task twice, and a killed sweep started again runs exactly the incomplete ones. Each task runs in
a worker process of its own: a worker that dies fails only its task, and workers die with their
sweep.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .collection import BEST_FILE, best_configurations, collect_results, stage_table, write_best  # noqa: F401
from .config import RunConfig
from .execution import init_worker, run_local, run_ray  # noqa: F401  (init_worker: sweep workers' setup)
from .grid import SweepOptions, expand_grid, load_sweep, load_sweep_options  # noqa: F401
from .stages import (  # noqa: F401  (ann_name, run_name, stage_lock, run_task: the sweep's public names)
    ANN_RESULT_FILE,
    ANNS_DIR,
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

BACKENDS = ("local", "ray")


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


def print_progress(name: str, status: str, elapsed_s: float) -> None:
    """A ``Reporter`` that prints one line per finished configuration."""
    print(f"[{elapsed_s:7.1f} s] {status:8s} {name}", file=sys.stderr, flush=True)
