"""Each of our nodes' torch multi-step forward vs SpikingJelly 2.0's ``IFNode`` on the same tensor.

Targets (issues 3, 4, 6): ratio <= 1.5 on CPU. Inference (no grad), soft-reset IFNode as baseline.

    python benchmarks/bench_nodes.py [--device cpu]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import machine, timeit
from spikingjelly.activation_based import functional, neuron
from torch import nn

from sparse_convert.neurons import AECNode, CSQCFSNode, SNMNode, STBIFNode
from sparse_convert.neurons.aec import INITS, AECActivation

SHAPES = {"MLP [64, 128, 3000]": (64, 128, 3000), "conv [64, 32, 64, 16, 16]": (64, 32, 64, 16, 16)}


def node_factories(sample: tuple[int, ...]) -> dict[str, Callable[[], nn.Module]]:
    """Our nodes for inputs of one sample's shape ``sample`` (channels first)."""
    g = torch.Generator().manual_seed(0)
    aec = AECActivation(INITS["cifar10"], 32)
    return {
        "CSQCFSNode": lambda: CSQCFSNode(torch.randn(sample[0], generator=g)),
        "SNMNode": lambda: SNMNode(torch.rand(sample, generator=g) + 0.5),
        "AECNode": lambda: AECNode(aec.code.as_dict(), window=32, depth=1),  # 32 decoding + 32 encoding steps
        "STBIFNode": lambda: STBIFNode(0.25, -8, 7),  # SpikeZIP-TF, 16 signed levels
    }


def run_node(node: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    @torch.no_grad()
    def fn() -> None:
        functional.reset_net(node)
        node(x)
    return fn


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    print(f"machine: {machine()}")
    for label, shape in SHAPES.items():
        x = torch.randn(shape, device=args.device)
        base = neuron.IFNode(v_reset=None, step_mode="m").to(args.device)
        t_base = timeit(run_node(base, x), repeat=args.repeat)
        print(f"{label}: SpikingJelly IFNode {t_base * 1e3:.1f} ms")
        for name, make in node_factories(shape[2:]).items():
            t = timeit(run_node(make().to(args.device), x), repeat=args.repeat)
            print(f"  {name:<12} {t * 1e3:8.1f} ms   ratio ours / IFNode = {t / t_base:.3f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
