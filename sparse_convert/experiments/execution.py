"""Executors of a sweep's tasks: a local pool of worker processes, or Ray Tune trials.

Both run ``stages.run_task`` for each task and report every outcome through ``record(task,
status, error)``. ANN stages are started before the conversions that need them, and a
conversion starts as soon as the ANN stages it needs are finished, not after every ANN.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from .stages import Task, record_failure, run_task

Record = Callable[[Task, str, "str | None"], None]


def init_worker() -> None:
    """Per-process setup of a sweep worker: one torch thread per CPU it was given (runs are repeatable
    and do not oversubscribe the cores), the fixed mmap threshold of the CLI, and the user's plugins."""
    import torch

    from ..allocator import fix_mmap_threshold
    from ..plugins import load_plugins

    torch.set_num_threads(int(os.environ.get("SPARSE_CONVERT_TRIAL_THREADS", "1")))
    fix_mmap_threshold()
    load_plugins()


# -- local: one process per task ----------------------------------------------------------------------


def _worker(connection: Connection, task: Task, out: str, wait: bool) -> None:
    """Body of one local worker process: run one task, send back (status, error). The worker dies with
    its sweep: a thread waits on the connection, which reads end-of-file once the sweep's main process
    is gone (however it died), and then kills the worker."""
    threading.Thread(target=_die_with_sweep, args=(connection,), daemon=True).start()
    init_worker()
    connection.send(run_task(task, out, wait))


def _die_with_sweep(connection: Connection) -> None:
    try:
        connection.recv()  # the sweep never sends: this returns only by end-of-file
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def death_message(exitcode: int | None) -> str:
    """What a worker's exit code says of its death."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"the worker process was killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"the worker process was killed by signal {-exitcode}"
    return f"the worker process exited with status {exitcode} without a result"


def run_local(tasks: list[Task], out: Path, workers: int, record: Record) -> None:
    """One process per task, at most ``workers`` at once, forked by a fork server that imported the runner
    once. A task is started when the ANN stages it needs are finished (complete or failed). A worker that
    dies (SIGKILL, out of memory) fails its own task only: it is written to ``errors/`` and the sweep goes
    on. Tasks another process holds are tried again once nothing else can start, waiting for their locks."""
    if not tasks:
        return
    from multiprocessing.connection import wait as wait_any

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "sparse_convert.experiments.runner"])
    finished: set[str] = set()  # tasks with an outcome (ran, complete, failed, ...) in this sweep
    queue, busy, wait_for_lock = list(tasks), [], False
    running: dict[Any, tuple[Any, Connection, Task]] = {}
    try:
        while queue or running or busy:
            startable = [t for t in queue if all(n in finished for n in t.needs)]
            if not startable and not running:  # only tasks another process holds (or that wait on them) remain
                if not busy:
                    raise RuntimeError(f"tasks wait for ANN stages that are not scheduled: {[t.name for t in queue]}")
                queue, busy, wait_for_lock = busy + queue, [], True
                continue
            for task in startable[:max(0, workers - len(running))]:
                queue.remove(task)
                mine, theirs = context.Pipe(duplex=True)
                process = context.Process(target=_worker, args=(theirs, task, str(out), wait_for_lock),
                                          name=f"sweep-{task.name}")
                process.start()
                theirs.close()
                running[process.sentinel] = (process, mine, task)
            if not running:
                continue
            for sentinel in wait_any(list(running)):
                process, connection, task = running.pop(sentinel)
                try:
                    outcome = connection.recv() if connection.poll() else None
                except EOFError:  # the worker died before it sent anything
                    outcome = None
                process.join()
                connection.close()
                if outcome is None:
                    message = death_message(process.exitcode)
                    record_failure(out, task.name, message, ann=task.kind == "ann")
                    outcome = ("failed", message)
                if outcome[0] == "busy":
                    busy.append(task)
                    continue
                finished.add(task.name)
                record(task, *outcome)
    finally:
        for process, connection, _ in running.values():  # interrupted (Ctrl-C): no worker outlives the sweep
            process.kill()
            process.join()
            connection.close()


# -- Ray Tune: one trial per task ---------------------------------------------------------------------


def _ray_trial(params: dict[str, Any], tasks: list[Task], out: str) -> dict[str, Any]:
    """A Ray Tune trial: one task of the sweep, run exactly as the local backend runs it."""
    init_worker()
    task = tasks[params["index"]]
    status, error = run_task(task, out, wait=True)
    return {"index": params["index"], "status": status, "error": error or ""}


def _probe_shared_folder(out: Path) -> None:
    """Refuse a folder that a Ray worker cannot write, or whose writes the driver does not see."""
    import uuid

    import ray

    probe = out / ".tune" / f"probe-{uuid.uuid4().hex}"

    @ray.remote(num_cpus=0)
    def write(path: str) -> str:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("ok\n")
            return ""
        except OSError as err:
            return f"{type(err).__name__}: {err}"

    error = ray.get(write.remote(str(probe)))
    try:
        if error or not probe.is_file():
            raise ValueError(f"sweep folder {out} is not writable from a Ray worker, or not on a file system "
                             f"the driver shares with it ({error or 'the probe file did not appear here'})")
    finally:
        probe.unlink(missing_ok=True)


def run_ray(tasks: list[Task], out: Path, workers: int, record: Record, *, cpus_per_trial: float = 1,
            gpus_per_trial: float = 0) -> None:
    """Ray Tune over the indices of ``tasks`` (ANN stages first, so Tune starts them first): each trial asks
    for ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs (fractional: 0.25 puts four trials on one GPU),
    ``workers`` at a time. Joins the cluster named by ``RAY_ADDRESS`` when set (``out`` must then be on a
    file system every node sees; a worker's write is checked before anything runs)."""
    if not tasks:
        return
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ValueError("--backend ray needs Ray Tune: pip install 'sparse-convert[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        cluster = {} if os.environ.get("RAY_ADDRESS") else {"num_cpus": max(1, int(workers * cpus_per_trial))}
        ray.init(include_dashboard=False, log_to_driver=False, **cluster,
                 runtime_env={"env_vars": {"SPARSE_CONVERT_TRIAL_THREADS": str(max(1, int(cpus_per_trial))),
                                           **_plugin_env()}})
    storage = out / ".tune"  # Tune's own bookkeeping (hidden: collect_results skips it); results are in out/runs
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_trial > 0 and gpus < gpus_per_trial:
            raise ValueError(f"--gpus-per-trial {gpus_per_trial:g} but the Ray cluster has {gpus:g} GPUs")
        _probe_shared_folder(out)
        resources = {"cpu": cpus_per_trial, **({"gpu": gpus_per_trial} if gpus_per_trial else {})}
        trainable = tune.with_resources(tune.with_parameters(_ray_trial, tasks=tasks, out=str(out)), resources)
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(tasks))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=workers, reuse_actors=True),  # one import per worker
            run_config=tune.RunConfig(storage_path=str(storage), name=f"sweep-{time.strftime('%Y%m%d-%H%M%S')}",
                                      verbose=0),
        )
        for result in tuner.fit():
            task = tasks[result.config["index"]]
            if result.error is not None:
                message = f"Ray trial error: {result.error}"
                record_failure(out, task.name, message, ann=task.kind == "ann")
                record(task, "failed", message)
            else:
                record(task, result.metrics["status"], result.metrics["error"] or None)
    finally:
        if started_here:
            ray.shutdown()


def _plugin_env() -> dict[str, str]:
    from ..plugins import ENV_VAR

    return {ENV_VAR: os.environ[ENV_VAR]} if os.environ.get(ENV_VAR) else {}
