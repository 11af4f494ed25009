"""Helpers shared by the benchmark scripts: timing, machine description, a CIFAR-size sparse SNN."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
            f"{gpu}, Python {platform.python_version()}")


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cifar_mlp_snn(sparsity: float = 0.99, levels: int = 8, seed: int = 0):
    """The CHT papers' MLP (3072 → 3 × 3000 → 10) with random masks, converted by CS-QCFS untrained."""
    from sparse_convert.methods import get_method
    from sparse_convert.models import build_model
    from sparse_convert.neurons import SQCFS
    from sparse_convert.topology import build_topology

    torch.manual_seed(seed)
    ann = build_model("mlp", 10, (3, 32, 32))
    build_topology("static", ann, None, sparsity, seed=seed)
    for name, m in list(ann.named_children()):
        if isinstance(m, nn.ReLU):
            setattr(ann, name, SQCFS(levels, threshold=1.0))
    return ann, get_method("qcfs")().convert(ann)
