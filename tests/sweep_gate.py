"""A sweep plugin for the kill tests: every task (ANN stage or conversion) waits for a token the test hands out.

Loaded in the sweep and its workers through ``SPARSE_CONVERT_PLUGINS=sweep_gate`` (with this
folder on ``PYTHONPATH``) when ``SWEEP_GATE`` names a folder. Before a task runs, its
worker writes ``waiting-<pid>`` there and blocks until it can claim a ``*.token`` file (by an
atomic rename) or the file ``open`` exists; it then writes ``running-<pid>``. The test thus
decides how many tasks may finish before it kills the sweep, and knows that others
are in flight (waiting) when the kill lands, however fast the machine is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sparse_convert.experiments import runner

GATE = os.environ.get("SWEEP_GATE")


def _pass_gate(gate: Path) -> None:
    me = os.getpid()
    waiting = gate / f"waiting-{me}"
    waiting.touch()
    while not (gate / "open").exists():
        for token in sorted(gate.glob("*.token")):
            try:
                os.rename(token, gate / f"{token.name}.claimed-{me}")
            except FileNotFoundError:  # another worker claimed it first
                continue
            break
        else:
            time.sleep(0.02)
            continue
        break
    waiting.unlink(missing_ok=True)
    (gate / f"running-{me}").touch()


def _gated(stage):
    def gated(*args, **kwargs):
        _pass_gate(Path(GATE))
        return stage(*args, **kwargs)

    gated.gated = True
    return gated


if GATE and not getattr(runner.run, "gated", False):  # both stages wait at the gate
    runner.run = _gated(runner.run)
    runner.train_stage = _gated(runner.train_stage)
