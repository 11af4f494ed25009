"""The staged sweep (each distinct ANN trained once) against the same grid with sharing turned off.

Grid (issue 12's acceptance sweep): digits MLP, ANN learning rate 0.05 / 0.02 × dense / 90 % CHT,
converted by CS-QCFS with L = 4 and 8 and by SNM: 4 distinct ANNs, 12 conversions. Both sweeps
run in fresh folders with the same workers; the script prints ANN trainings and wall time of each
and their ratio, and checks that both give the same numbers for every conversion.

    python benchmarks/bench_sweep.py [--workers 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import machine

from sparse_convert.experiments.result import RunResult
from sparse_convert.experiments.sweep import SweepOptions, expand_grid, run_name, sweep


def grid(epochs: int) -> dict:
    return {
        "grid": {
            "method": ["qcfs", "snm"], "sparsity": [0.0, 0.9], "topology": ["cht"], "t_max": [32],
            "train": {"lr": [0.05, 0.02], "epochs": [epochs]},
            "method_options": {"qcfs": {"levels": [4, 8], "layer_epochs": [2], "channel_epochs": [2]}},
        },
    }


def timed_sweep(configs, out: Path, workers: int, share: bool) -> tuple[float, int]:
    start = time.perf_counter()
    summary = sweep(configs, out, workers=workers, options=SweepOptions(share=share))
    elapsed = time.perf_counter() - start
    if not summary.ok:
        raise SystemExit(f"sweep failed: {summary.failed}")
    trainings = len(summary.anns.ran) if share else len(summary.conversions.ran)
    return elapsed, trainings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30, help="ANN training epochs")
    args = p.parse_args()
    configs = expand_grid(grid(args.epochs))
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        staged_s, staged_anns = timed_sweep(configs, Path(tmp) / "staged", args.workers, share=True)
        alone_s, alone_anns = timed_sweep(configs, Path(tmp) / "unshared", args.workers, share=False)
        for config in configs:
            name = run_name(config.to_dict())
            a, b = (RunResult.load(Path(tmp) / kind / "runs" / name) for kind in ("staged", "unshared"))
            if a.per_step != b.per_step or a.chosen != b.chosen:
                raise SystemExit(f"{name}: the staged and unshared sweeps differ")
    print(f"{len(configs)} conversions, --workers {args.workers}, {args.epochs} ANN epochs")
    print(f"staged:   {staged_anns:2d} ANN trainings, {staged_s:7.1f} s")
    print(f"unshared: {alone_anns:2d} ANN trainings, {alone_s:7.1f} s")
    print(f"ratio unshared / staged: {alone_s / staged_s:.2f}x wall time, {alone_anns / staged_anns:.1f}x ANN "
          "trainings; every conversion's per_step and chosen identical")


if __name__ == "__main__":
    main()
