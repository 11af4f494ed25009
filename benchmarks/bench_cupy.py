"""CuPy backend (one fused kernel over all T steps) vs our torch backend, on a CUDA GPU.

T = 64, batch 128, VGG-16-sized feature maps (64 x 32 x 32, 256 x 8 x 8, 512 x 2 x 2);
issue 4's goal: >= 5x faster. Prints the card. Exits with a message when there is no GPU.

    python benchmarks/bench_cupy.py [--dtype float32|float16]
"""

from __future__ import annotations

import argparse
import sys

import torch
from bench_nodes import node_factories
from common import machine
from spikingjelly.activation_based import functional

from sparse_convert.neurons.cupy_backend import cupy_available

SHAPES = [(64, 32, 32), (256, 8, 8), (512, 2, 2)]


def gpu_time(fn, repeat: int = 10) -> float:
    """Median CUDA-event time of ``fn()`` in seconds."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    if not cupy_available():
        print("bench_cupy: needs CuPy and a CUDA GPU; none here (install the 'cupy' extra on a GPU machine)")
        sys.exit(0)
    dtype = getattr(torch, args.dtype)
    print(f"machine: {machine()}")
    for shape in SHAPES:
        x = torch.randn(args.steps, args.batch, *shape, device="cuda", dtype=dtype)
        for name, make in node_factories(shape).items():
            node = make().to(device="cuda", dtype=dtype)

            @torch.no_grad()
            def run(node=node, x=x):
                functional.reset_net(node)
                node(x)

            node.backend = "torch"
            t_torch = gpu_time(run)
            node.backend = "cupy"
            t_cupy = gpu_time(run)
            print(f"{name:<11} {str(shape):<14} torch {t_torch * 1e3:8.2f} ms  cupy {t_cupy * 1e3:8.2f} ms  "
                  f"speed-up {t_torch / t_cupy:6.1f}x  (goal >= 5)")


if __name__ == "__main__":
    main()
