"""A small digits sweep shared by the sweep and report tests, and helpers to run the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: 3 methods x dense/sparse x 3 seeds = 18 small configurations (a few seconds each on one core).
TINY_SWEEP = """
[grid]
model = ["mlp"]
dataset = ["digits"]
method = ["qcfs", "snm", "aec"]
sparsity = [0.0, 0.9]
topology = ["cht"]
seed = [0, 1, 2]
t_max = [24]

[grid.train]
epochs = [6]
lr = [0.05]

[grid.model_options.mlp]
hidden = [[32]]

[grid.method_options.qcfs]
layer_epochs = [1]
channel_epochs = [1]

[grid.method_options.aec]
epochs = [1]
"""
TINY_CONFIGS = 18
#: ... from 2 sparsities x 3 seeds = 6 ANN stages.
TINY_ANNS = 6


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: one thread per process (2 cores are shared)."""
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def sweep_command(toml: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sparse_convert.cli", "sweep", str(toml), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="session")
def tiny_toml(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "tiny_sweep.toml"
    path.write_text(TINY_SWEEP)
    return path


@pytest.fixture(scope="session")
def digits_sweep(tiny_toml, tmp_path_factory) -> Path:
    """The tiny sweep run once, uninterrupted, with ``--workers 2`` (a rerun only finds it complete)."""
    out = tmp_path_factory.getbasetemp() / "digits-sweep"
    done = subprocess.run(sweep_command(tiny_toml, out, "--workers", "2"), env=cli_env(), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
