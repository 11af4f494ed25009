"""ViT-B/16 SpikeZIP-TF SNN on a GPU: throughput, peak memory, instrumented vs plain (target <= 1.10).

ViT-B/16 (timm ``vit_base_patch16_224``, random weights, 70 % magnitude-pruned Linear layers,
classifier dense), quantized with L levels and its steps calibrated on the input batch, then
converted; batch 32, T = 64 steps in chunks, random 224 x 224 inputs. "plain" only calls the
SNN; "instrumented" is ``evaluate_over_time`` (accuracy, MASFR, exact MAC/AC events with
attention products, softmax / LayerNorm operation counts at every step). Without CUDA it
prints that it skipped; ``--model vit_tiny --device cpu`` measures the tiny digits ViT on a CPU.

    python benchmarks/bench_vit_gpu.py [--batch 32] [--t-max 64] [--chunk 8] [--repeat 3]
    python benchmarks/bench_vit_gpu.py --model vit_tiny --device cpu --batch 256 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine
from spikingjelly.activation_based import functional
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import evaluate_over_time
from sparse_convert.methods import get_method
from sparse_convert.methods.spikezip import calibrating, quantize_ann
from sparse_convert.models import build_model
from sparse_convert.topology import magnitude_prune, output_layer_name

SHAPES = {"vit_b16": ((3, 224, 224), 1000), "vit_tiny": ((1, 8, 8), 10)}


def build_snn(model: str, batch: torch.Tensor, levels: int, sparsity: float, device: torch.device) -> nn.Module:
    in_shape, classes = SHAPES[model]
    torch.manual_seed(0)
    ann = build_model(model, classes, in_shape)
    linear = [n for n, m in ann.named_modules() if isinstance(m, nn.Linear) and n != output_layer_name(ann)]
    magnitude_prune(ann, sparsity, layers=linear)
    quantize_ann(ann, levels)
    ann.to(device).eval()
    with torch.no_grad(), calibrating(ann):
        ann(batch)
    return get_method("spikezip")(levels=levels).convert(ann).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=sorted(SHAPES), default="vit_b16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--t-max", type=int, default=64)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--levels", type=int, default=16)
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"skipped: no CUDA GPU visible to torch {torch.__version__} on this machine ({machine()}); "
              "run this on a GPU machine, or use --model vit_tiny --device cpu")
        return

    in_shape, classes = SHAPES[args.model]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *in_shape, generator=g).to(device)
    y = torch.randint(0, classes, (args.batch,), generator=g)
    snn = build_snn(args.model, x, args.levels, args.sparsity, device)
    data = TensorDataset(x.cpu(), y)

    @torch.no_grad()
    def plain() -> None:
        functional.reset_net(snn)
        total = 0
        for t0 in range(0, args.t_max, args.chunk):
            k = min(args.chunk, args.t_max - t0)
            total = total + snn(snn.encoder.encode(x, t0, k)).sum(0)
        functional.reset_net(snn)

    def instrumented() -> None:
        evaluate_over_time(snn, data, args.t_max, batch_size=args.batch, chunk=args.chunk, device=device,
                           progress=False)

    def timed(fn) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        return time.perf_counter() - start, peak

    plain()  # warm-up
    instrumented()
    runs = {"plain": [], "instrumented": []}
    peaks = {"plain": 0.0, "instrumented": 0.0}
    for _ in range(args.repeat):  # interleaved, so that drifts of the machine hit both alike
        for name, fn in (("plain", plain), ("instrumented", instrumented)):
            seconds, peak = timed(fn)
            runs[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    t_plain, t_inst = statistics.median(runs["plain"]), statistics.median(runs["instrumented"])
    print(f"machine: {machine()}")
    print(f"{args.model} SpikeZIP-TF SNN, L={args.levels}, {args.sparsity:.0%} sparse Linear layers, "
          f"batch {args.batch}, T={args.t_max}, chunk {args.chunk}, device {device}")
    print(f"runs (plain / instrumented, s): {[round(a, 3) for a in runs['plain']]} / "
          f"{[round(b, 3) for b in runs['instrumented']]}")
    print(f"throughput: plain {args.batch / t_plain:.2f} images/s, instrumented {args.batch / t_inst:.2f} images/s "
          f"({args.t_max} steps each)")
    if device.type == "cuda":
        print(f"peak GPU memory: plain {peaks['plain']:.2f} GiB, instrumented {peaks['instrumented']:.2f} GiB")
    print(f"ratio instrumented / plain (medians) = {t_inst / t_plain:.3f}  (target <= 1.10)")
    print(f"ratio instrumented / plain (best of {args.repeat}) = {min(runs['instrumented']) / min(runs['plain']):.3f}")


if __name__ == "__main__":
    main()
