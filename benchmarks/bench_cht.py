"""CH2-L3n scoring, ours vs the dense matrix-product formula, and one CHT update of the CIFAR-size MLP.

Issue 5 goals: identical scores; at 99 % sparsity ours >= 3x faster than the dense formula,
at 50 % not slower. The update of the 3072 → 3 × 3000 → 10 MLP at 99 % reports its time and
the peak resident memory it adds (measured in a fresh process).

    python benchmarks/bench_cht.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from common import machine

from sparse_convert.topology import ch2_l3n_scores
from sparse_convert.topology.link_prediction import sparse_is_cheaper

OUT, IN = 3000, 3072


def dense_formula(mask: torch.Tensor) -> torch.Tensor:
    """The reference code's CH2-L3n: dense [out, out] and [in, in] products (float64)."""
    m = mask.to(torch.float64)
    dd, tt = m @ m.T, m.T @ m
    w_dt = (dd + (dd != 0)) / (m.sum(1) - dd).clamp_min(1)
    w_td = (tt + (tt != 0)) / (m.sum(0) - tt).clamp_min(1)
    return (w_dt @ m + (w_td @ m.T).T) * (m == 0)


def random_mask(sparsity: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = OUT * IN
    flat = torch.zeros(n, dtype=torch.bool)
    flat[torch.randperm(n, generator=g)[: round((1 - sparsity) * n)]] = True
    return flat.view(OUT, IN)


def compare_scoring(sparsity: float, repeat: int) -> None:
    mask = random_mask(sparsity)
    ours_t, dense_t = [], []
    for _ in range(repeat):  # interleaved, so that noisy neighbours hit both sides alike
        start = time.perf_counter()
        ours = ch2_l3n_scores(mask)
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        dense = dense_formula(mask)
        dense_t.append(time.perf_counter() - start)
    diff = float((ours - dense).abs().max())
    assert torch.allclose(ours, dense, rtol=1e-12, atol=1e-12), f"scores differ by up to {diff}"
    path = "sparse" if sparse_is_cheaper(mask) else "dense"
    o, d = statistics.median(ours_t), statistics.median(dense_t)
    print(f"{OUT}x{IN} at {sparsity:.0%} sparsity ({int(mask.sum())} links; ours takes the {path} path):")
    print(f"  runs (ours / dense formula, s): {[round(t, 2) for t in ours_t]} / {[round(t, 2) for t in dense_t]}")
    print(f"  ours {o:.3f} s, dense formula {d:.3f} s, ratio dense / ours (medians) = {d / o:.2f}, "
          f"best of {repeat} = {min(dense_t) / min(ours_t):.2f}")
    print(f"  identical scores: max |ours - dense| = {diff:.2e} (float64)")


def update_child() -> None:
    """One process: build the 99 % MLP, run CHT updates, print time and peak RSS as JSON."""
    from sparse_convert.models import build_model
    from sparse_convert.topology import build_topology, get_mask

    torch.manual_seed(0)
    model = build_model("mlp", 10, (3, 32, 32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = build_topology("cht", model, optimizer, 0.99, total_steps=10_000, update_interval=1)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()  # momentum buffers exist, as in training
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sched.step()  # update_interval=1: every step is an update
        times.append(time.perf_counter() - start)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = sched.history[0]
    print(json.dumps({"times": times, "before_mb": before_kb / 1024, "peak_mb": peak_kb / 1024,
                      "changed": sum(r["changed"] for r in record["layers"].values()),
                      "links": sum(int(get_mask(m).sum()) for m in sched.layers().values())}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--child", action="store_true")
    args = p.parse_args()
    if args.child:
        update_child()
        return
    print(f"machine: {machine()}")
    for sparsity in (0.99, 0.5):
        compare_scoring(sparsity, args.repeat)
    out = subprocess.run([sys.executable, __file__, "--child"], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print("one CHT update, MLP 3072 -> 3 x 3000 -> 10 at 99 % (3 hidden-chain layers, CH2-L3n soft regrowth):")
    print(f"  times of 3 consecutive updates (s): {[round(t, 2) for t in r['times']]}, "
          f"median {statistics.median(r['times']):.2f} s; {r['changed']} links changed of {r['links']}")
    print(f"  peak RSS {r['peak_mb']:.1f} MiB, growth during the updates {r['peak_mb'] - r['before_mb']:.1f} MiB "
          f"(model, optimizer and libraries loaded before: {r['before_mb']:.1f} MiB)")


if __name__ == "__main__":
    main()
