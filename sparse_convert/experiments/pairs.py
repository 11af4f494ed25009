"""Dense vs sparse: the same configuration run dense and sparse side by side, resuming complete runs.

The examples and the demo compare a dense network with a sparse one under one method;
each run lands in ``OUT/<method>-dense`` or ``OUT/<method>-sparse`` and is reused when its
``result.json`` holds the same configuration, so an interrupted script picks up where it stopped;
one of another configuration is an error naming the differing fields (``force`` reruns it).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .config import RunConfig
from .result import RESULT_FILE, RunResult
from .runner import run


def finished_run(config: RunConfig, folder: str | os.PathLike) -> dict[str, Any] | None:
    """The finished result in ``folder`` when it holds ``config``'s run, None when there is none; a
    ``ValueError`` naming the differing fields when it holds another configuration's."""
    folder = Path(folder)
    if not (folder / RESULT_FILE).is_file():
        return None
    result = RunResult.load(folder)
    try:
        stored = result.run_config()
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder / RESULT_FILE} holds an unreadable config: {err}") from None
    differences = config.differences(stored)
    if differences:
        raise ValueError(f"{folder} holds a finished run of another configuration (requested vs stored: "
                         f"{'; '.join(differences)}); pass --force to rerun it, or choose another folder")
    return result.to_dict()


def run_or_load(config: RunConfig, folder: str | os.PathLike, *, ann_checkpoint: str | os.PathLike | None = None,
                progress: bool = True, force: bool = False) -> dict[str, Any]:
    """The result in ``folder`` when it is ``config``'s finished run, else ``run(config, folder)``'s. A finished
    run of another configuration is an error (see ``finished_run``) unless ``force`` reruns it."""
    if not force and (result := finished_run(config, folder)) is not None:
        return result
    return run(config, folder, ann_checkpoint=ann_checkpoint, progress=progress)


def connectivity_folder(out: str | os.PathLike, method: str, sparsity: float) -> Path:
    """``out/<method>-dense`` or ``out/<method>-sparse``."""
    return Path(out) / f"{method}-{'sparse' if sparsity > 0 else 'dense'}"


def run_dense_and_sparse(config: RunConfig, sparsity: float, out: str | os.PathLike, *, dense: bool = True,
                         topology: str = "cht", progress: bool = True, force: bool = False) -> list[dict[str, Any]]:
    """``config`` run dense (static masks) and at ``sparsity`` (masks evolved by ``topology``); the results,
    dense first. ``dense=False`` runs the sparse network only. Every finished run is checked before any
    training (see ``run_or_load``)."""
    if not 0 < sparsity < 1:
        raise ValueError(f"the sparse run needs a sparsity in (0, 1), got {sparsity}")
    plan = [(dataclasses.replace(config, sparsity=s, topology=topology if s > 0 else "static"),
             connectivity_folder(out, config.method, s)) for s in ((0.0, sparsity) if dense else (sparsity,))]
    for cfg, folder in plan if not force else []:
        finished_run(cfg, folder)
    return [run_or_load(cfg, folder, progress=progress, force=force) for cfg, folder in plan]
