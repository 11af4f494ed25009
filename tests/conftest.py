"""Shared fixtures: digits runs made once per session (they take seconds each)."""

import pytest

from sparse_convert.experiments import RunConfig, run


@pytest.fixture(scope="session")
def digits_runs(tmp_path_factory):
    """The acceptance runs: ``run --model mlp --dataset digits --method qcfs --t-max 64 --seed 0``,
    dense and at sparsity 0.9, written to folders; returns {sparsity: (folder, result)}."""
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for sparsity in (0.0, 0.9):
        folder = root / f"qcfs-{sparsity}"
        cfg = RunConfig(model="mlp", dataset="digits", method="qcfs", sparsity=sparsity, t_max=64, seed=0)
        runs[sparsity] = (folder, run(cfg, folder, progress=False))
    return runs
