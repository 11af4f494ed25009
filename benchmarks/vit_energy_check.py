"""Theoretical energy of the SpikeZIP-TF ViT-B/16 SNN, dense and 70 %-sparse, against the paper's magnitudes.

The paper (Table A2) reports per ImageNet image at T = 37: dense 169,715.88 µJ, 70 %-sparse
69,800.39 µJ (reduction 58.87 %). This script counts on the real architecture (timm's
``vit_base_patch16_224``, random weights, nothing downloaded) with our counters:

1. the dense model and a copy magnitude-pruned to 70 % in its Linear layers (classifier dense,
   the patch embedding a dense Conv2d, as the paper states "linear layers");
2. both become SpikeZIP-TF SNNs (``quantize_ann`` + ``SpikeZIP.convert``: analog image at step 0,
   ST-BIF+ nodes, spike-equivalent softmax / LayerNorm / attention products);
3. every ST-BIF+ node is replaced by a source of random ternary spikes at a stated rate
   (``--rate``: the fraction of neurons that spike per step; the same spike trains in both
   networks), and ``evaluate_over_time`` runs ``--steps`` steps on one random image.

It prints MACs, ACs (synaptic and attention products apart), softmax / LayerNorm operations,
energy and the reduction, the rate at which our dense count would equal the paper's, the
expected synaptic count ``rate · Σ_layers nnz(W) · tokens · T`` as a check, and what direct
input encoding (the image at every step) would add. docs/vit_energy.md explains where the
numbers land and why.

    python benchmarks/vit_energy_check.py [--rate 0.3] [--steps 37] [--chunk 4] [--levels 16]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from common import machine
from spikingjelly.activation_based import neuron
from torch import nn
from torch.utils.data import TensorDataset

from sparse_convert.energy import EnergyModel, evaluate_over_time
from sparse_convert.methods import TimeFold, get_method
from sparse_convert.methods.spikezip import quantize_ann
from sparse_convert.models import build_model
from sparse_convert.neurons import STBIFNode
from sparse_convert.topology import get_mask, magnitude_prune, output_layer_name

#: The paper's Table A2, ViT-B / SpikeZIP-TF on ImageNet at T = 37, µJ per image.
PAPER_UJ = {"dense": 169_715.88, "sparse": 69_800.39}


class SyntheticSpikes(neuron.BaseNode):
    """Ignores its input: each neuron spikes with probability ``rate`` per step (±θ if signed, else +θ)."""

    def __init__(self, rate: float, signed: bool, theta: float, generator: torch.Generator):
        super().__init__(v_threshold=1.0, v_reset=None, step_mode="m")
        self.rate, self.signed, self.theta, self.generator = rate, signed, theta, generator

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x = inputs[0]
        u = torch.rand(x.shape, generator=self.generator)
        spikes = (u < self.rate).to(x.dtype)
        if self.signed:
            spikes = spikes * (1 - 2 * (torch.rand(x.shape, generator=self.generator) < 0.5).to(x.dtype))
        return (spikes * self.theta,), states


def synthetic_snn(ann: nn.Module, levels: int, rate: float, seed: int) -> nn.Module:
    """The SpikeZIP-TF SNN of ``ann`` with every ST-BIF+ node emitting random spikes at ``rate``."""
    qann = quantize_ann(copy.deepcopy(ann), levels)
    snn = get_method("spikezip")(levels=levels).convert(qann)
    generator = torch.Generator().manual_seed(seed)
    for fold in [m for m in snn.modules() if isinstance(m, TimeFold) and isinstance(m.node, STBIFNode)]:
        node = fold.node
        fold.node = SyntheticSpikes(rate, bool(node.neg_min < 0), float(node.threshold), generator)
    return snn


def expected_synaptic_events(ann: nn.Module, rate: float, steps: int) -> float:
    """``rate · Σ nnz(W) · tokens · steps`` over the Linear layers that spikes reach (all but the patch embedding)."""
    tokens = ann.patch_embed.num_patches + ann.num_prefix_tokens
    total = 0.0
    for name, m in ann.named_modules():
        if isinstance(m, nn.Linear):
            rows = 1 if name == output_layer_name(ann) else tokens  # the head sees the class token only
            total += rate * float((m.weight != 0).sum()) * rows * steps
    return total


def count(ann: nn.Module, args: argparse.Namespace, image: torch.Tensor) -> dict[str, float]:
    snn = synthetic_snn(ann, args.levels, args.rate, args.seed)
    data = TensorDataset(image, torch.zeros(1, dtype=torch.long))
    curves = evaluate_over_time(snn, data, args.steps, batch_size=1, chunk=args.chunk, progress=False)
    products = sum(v for n, v in curves.layer_events.items() if n.endswith((".qk.node", ".av.node")))
    at = curves.at(args.steps)
    return {"mac": at["mac"], "ac": at["ac"], "ac_products": products, "ac_synaptic": at["ac"] - products,
            "softmax_ops": at.get("softmax_ops", 0.0), "layernorm_ops": at.get("layernorm_ops", 0.0),
            "energy_uj": at["energy_uj"], "masfr": at["masfr"],
            "expected_synaptic": expected_synaptic_events(ann, args.rate, args.steps)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=float, default=0.3, help="spikes per neuron per step (MASFR)")
    p.add_argument("--steps", type=int, default=37)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--levels", type=int, default=16)
    p.add_argument("--sparsity", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if not 0.0 < args.rate <= 1.0:
        raise SystemExit(f"--rate must be in (0, 1], got {args.rate}")

    torch.manual_seed(args.seed)
    dense = build_model("vit_b16", 1000, (3, 224, 224))
    sparse = copy.deepcopy(dense)
    linear = [n for n, m in sparse.named_modules() if isinstance(m, nn.Linear) and n != output_layer_name(sparse)]
    magnitude_prune(sparse, args.sparsity, layers=linear)
    assert get_mask(sparse.head) is None and get_mask(sparse.patch_embed.proj) is None
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))

    print(f"machine: {machine()}")
    print(f"ViT-B/16 (timm vit_base_patch16_224, random weights), SpikeZIP-TF L={args.levels}, T={args.steps}, "
          f"synthetic spikes at rate {args.rate} per neuron per step, one random 224x224 image")
    results = {}
    for kind, model in (("dense", dense), ("sparse", sparse)):
        start = time.perf_counter()
        results[kind] = r = count(model, args, image)
        print(f"\n{kind}: ({time.perf_counter() - start:.0f} s)")
        print(f"  MACs {r['mac']:.4g} (patch embedding, step 0) | ACs {r['ac']:.4g} = synaptic {r['ac_synaptic']:.4g} "
              f"(expected {r['expected_synaptic']:.4g}) + attention products {r['ac_products']:.4g}")
        print(f"  softmax ops {r['softmax_ops']:.4g}, LayerNorm ops {r['layernorm_ops']:.4g} (not in the energy)")
        print(f"  MASFR({args.steps}) {r['masfr']:.4f} | energy {r['energy_uj']:,.2f} uJ/image "
              f"(paper {PAPER_UJ[kind]:,.2f}, ours/paper {r['energy_uj'] / PAPER_UJ[kind]:.3f})")
    dense_uj, sparse_uj = results["dense"]["energy_uj"], results["sparse"]["energy_uj"]
    print(f"\nreduction: ours {reduction(dense_uj, sparse_uj):.2f} % | "
          f"paper {reduction(PAPER_UJ['dense'], PAPER_UJ['sparse']):.2f} %")
    share = results["dense"]["ac_products"] / results["dense"]["ac"]
    print(f"attention products: {100 * share:.1f} % of the dense ACs "
          f"({100 * results['sparse']['ac_products'] / results['sparse']['ac']:.1f} % of the sparse)")
    mac_uj = EnergyModel().energy_uj(results["dense"]["mac"], 0.0)  # the patch embedding at step 0
    print(f"rate at which our dense count equals the paper's (ACs scaled linearly): "
          f"{args.rate * (PAPER_UJ['dense'] - mac_uj) / (dense_uj - mac_uj):.3f}")
    # Direct input encoding (the image at every step, paper §2.2): the patch embedding's MACs repeat each step.
    extra_uj = mac_uj * (args.steps - 1)
    every_step_uj = mac_uj * args.steps
    print(f"with the image fed at every step instead (direct encoding), the dense patch embedding adds "
          f"{extra_uj:,.2f} uJ to both: dense {dense_uj + extra_uj:,.2f}, sparse {sparse_uj + extra_uj:,.2f}, "
          f"reduction {reduction(dense_uj + extra_uj, sparse_uj + extra_uj):.2f} %; the paper's dense figure then "
          f"means rate {args.rate * (PAPER_UJ['dense'] - every_step_uj) / (dense_uj - mac_uj):.3f}")


def reduction(dense_uj: float, sparse_uj: float) -> float:
    """The paper's Table 1 reduction, (E_dense − E_sparse) / E_dense in %."""
    return 100 * (1 - sparse_uj / dense_uj)


if __name__ == "__main__":
    main()
