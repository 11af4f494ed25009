"""Peak memory of a T = 64 evaluation vs a T = 8 evaluation (issue 3 target: ratio <= 1.1).

Each evaluation runs in a fresh process; we report the peak resident set size and its
growth over the resident size just before evaluation (the model and libraries loaded).
On CUDA (``--device cuda``) the peak allocated GPU memory is reported instead.

    python benchmarks/bench_memory.py [--batch 128] [--images 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

from common import machine


def child(t_max: int, batch: int, images: int, device: str, default_allocator: bool) -> None:
    if not default_allocator:
        from sparse_convert.allocator import fix_mmap_threshold

        fix_mmap_threshold()  # as the CLI does
    import torch
    from common import cifar_mlp_snn
    from torch.utils.data import TensorDataset

    from sparse_convert.energy import evaluate_over_time

    _, snn = cifar_mlp_snn(0.99)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(images, 3, 32, 32, generator=g), torch.randint(0, 10, (images,), generator=g))
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    evaluate_over_time(snn, data, t_max, batch_size=batch, device=device, progress=False)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    print(json.dumps({"before_mb": before_kb / 1024, "peak_mb": peak_kb / 1024, "gpu_peak_mb": gpu and gpu / 2**20}))


def measure(t_max: int, args, default_allocator: bool) -> dict:
    extra = ["--default-allocator"] if default_allocator else []
    out = subprocess.run([sys.executable, __file__, "--child", str(t_max), "--batch", str(args.batch),
                          "--images", str(args.images), "--device", args.device, *extra],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", type=int, default=None)
    p.add_argument("--default-allocator", action="store_true", help="leave glibc's dynamic mmap threshold on")
    args = p.parse_args()
    if args.child is not None:
        child(args.child, args.batch, args.images, args.device, args.default_allocator)
        return
    print(f"machine: {machine()}")
    print(f"CIFAR-size MLP 99 % sparse, batch {args.batch}, {args.images} images, device {args.device}")
    for default_allocator in (False, True):
        print("glibc default (dynamic mmap threshold):" if default_allocator
              else "fixed mmap threshold (as the CLI runs):")
        report(measure(8, args, default_allocator), measure(64, args, default_allocator))


def report(r8: dict, r64: dict) -> None:
    for t, r in ((8, r8), (64, r64)):
        gpu = f", GPU peak {r['gpu_peak_mb']:.1f} MiB" if r["gpu_peak_mb"] else ""
        growth = r["peak_mb"] - r["before_mb"]
        print(f"  T={t:>2}: peak RSS {r['peak_mb']:.1f} MiB (growth during evaluation {growth:.1f} MiB){gpu}")
    print(f"  ratio peak RSS T=64 / T=8 = {r64['peak_mb'] / r8['peak_mb']:.3f}  (target <= 1.1)")
    g8, g64 = r8["peak_mb"] - r8["before_mb"], r64["peak_mb"] - r64["before_mb"]
    print(f"  ratio of growth during evaluation T=64 / T=8 = {g64 / max(g8, 1e-9):.3f}")
    if r8["gpu_peak_mb"]:
        print(f"  ratio GPU peak T=64 / T=8 = {r64['gpu_peak_mb'] / r8['gpu_peak_mb']:.3f}")


if __name__ == "__main__":
    main()
