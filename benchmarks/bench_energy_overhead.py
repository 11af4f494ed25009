"""Instrumented evaluation (accuracy, MASFR, exact sparse events at every step) vs the plain SNN forward.

Same network (CIFAR-size MLP, 99 % sparse, CS-QCFS), same input, same T and chunking; the
plain loop only calls the network. Target (issue 3): ratio <= 1.10.

    python benchmarks/bench_energy_overhead.py [--t-max 64] [--batch 128] [--images 128] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import cifar_mlp_snn, machine, timeit
from spikingjelly.activation_based import functional
from torch.utils.data import TensorDataset

from sparse_convert.allocator import fix_mmap_threshold
from sparse_convert.energy import evaluate_over_time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--t-max", type=int, default=64)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--sparsity", type=float, default=0.99)
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args()

    _, snn = cifar_mlp_snn(args.sparsity)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    data = TensorDataset(x, y)

    @torch.no_grad()
    def plain() -> None:
        for i in range(0, args.images, args.batch):
            xb = x[i:i + args.batch]
            functional.reset_net(snn)
            total = 0
            for t0 in range(0, args.t_max, args.chunk):
                k = min(args.chunk, args.t_max - t0)
                total = total + snn(snn.encoder.encode(xb, t0, k)).sum(0)
        functional.reset_net(snn)

    def instrumented() -> None:
        evaluate_over_time(snn, data, args.t_max, batch_size=args.batch, chunk=args.chunk, progress=False)

    fix_mmap_threshold()  # as the CLI does; see sparse_convert/allocator.py
    plain()  # warm-up
    plains, insts = [], []
    for _ in range(args.repeat):  # interleaved, so that drifts of the machine hit both alike
        plains.append(timeit(plain, repeat=1, warmup=0))
        insts.append(timeit(instrumented, repeat=1, warmup=0))
    t_plain, t_inst = statistics.median(plains), statistics.median(insts)
    print(f"machine: {machine()}")
    print(f"CIFAR-size MLP, sparsity {args.sparsity}, T={args.t_max}, {args.images} images, batch {args.batch}, "
          f"chunk {args.chunk}")
    print(f"runs (plain / instrumented, s): {[round(a, 2) for a in plains]} / {[round(b, 2) for b in insts]}")
    print(f"plain SNN forward:    {t_plain:.3f} s")
    print(f"instrumented (ours):  {t_inst:.3f} s")
    print(f"ratio instrumented / plain (medians) = {t_inst / t_plain:.3f}  (target <= 1.10)")
    print(f"ratio instrumented / plain (best of {args.repeat}) = {min(insts) / min(plains):.3f}")


if __name__ == "__main__":
    main()
