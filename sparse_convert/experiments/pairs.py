"""Dense vs sparse: the same configuration run dense and sparse side by side, resuming complete runs.

The examples and the demo compare a dense network with a sparse one under one method;
each run lands in ``OUT/<method>-dense`` or ``OUT/<method>-sparse`` and is reused when its
``result.json`` exists, so an interrupted script picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .config import RunConfig
from .runner import load_result, run
from .store import RESULT_FILE


def run_or_load(config: RunConfig, folder: str | os.PathLike, *, ann_checkpoint: str | os.PathLike | None = None,
                progress: bool = True) -> dict[str, Any]:
    """The result in ``folder`` when it is complete, else ``run(config, folder)``'s."""
    folder = Path(folder)
    if (folder / RESULT_FILE).is_file():
        return load_result(folder)
    return run(config, folder, ann_checkpoint=ann_checkpoint, progress=progress)


def connectivity_folder(out: str | os.PathLike, method: str, sparsity: float) -> Path:
    """``out/<method>-dense`` or ``out/<method>-sparse``."""
    return Path(out) / f"{method}-{'sparse' if sparsity > 0 else 'dense'}"


def run_dense_and_sparse(config: RunConfig, sparsity: float, out: str | os.PathLike, *, dense: bool = True,
                         topology: str = "cht", progress: bool = True) -> list[dict[str, Any]]:
    """``config`` run dense (static masks) and at ``sparsity`` (masks evolved by ``topology``); the results,
    dense first. ``dense=False`` runs the sparse network only."""
    if not 0 < sparsity < 1:
        raise ValueError(f"the sparse run needs a sparsity in (0, 1), got {sparsity}")
    results = []
    for s in ((0.0, sparsity) if dense else (sparsity,)):
        cfg = dataclasses.replace(config, sparsity=s, topology=topology if s > 0 else "static")
        results.append(run_or_load(cfg, connectivity_folder(out, config.method, s), progress=progress))
    return results
