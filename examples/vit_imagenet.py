"""A 70 %-sparse ViT converted by SpikeZIP-TF (method 4; paper Figure 2 and Table 1, row "ViT-B"), step by step.

Unlike the MLP and VGG-16 examples, which call ``experiments.run``, this one spells the
pipeline out with the library's pieces: data, model registry, topology, training,
conversion method, evaluation over time.

    python examples/vit_imagenet.py                        # a tiny ViT on digits, on the CPU
    python examples/vit_imagenet.py --dataset imagenet --data-root DIR --model vit_b16 \\
        --model-opt pretrained=PATH/vit_base_patch16_224.safetensors --epochs 1 --t-max 64 --device cuda

ImageNet is read from ImageFolder trees ``DIR/train/<wnid>/*.JPEG`` and ``DIR/val/...``;
nothing is downloaded, and the pretrained weights are a local safetensors file (see
``sparse_convert/models/vit.py`` for how to make one from timm). ``--model-opt`` passes
options to ``build_model``, ``--method-opt`` to the method (e.g. ``levels=16``, ``epochs=1``).
"""

from __future__ import annotations

import argparse
import json

import torch

from sparse_convert.data import load_dataset
from sparse_convert.energy import evaluate_over_time
from sparse_convert.methods import MethodContext, get_method
from sparse_convert.models import build_model
from sparse_convert.topology import build_topology, density
from sparse_convert.training import FitConfig, accuracy, fit, make_loader, make_optimizer


def key_value(text: str) -> tuple[str, object]:
    """``key=value`` with a JSON value when it parses as JSON."""
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", help="digits or imagenet")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--model", default="vit_tiny", help="vit_tiny (CPU) or vit_b16 (the paper's ViT-B/16)")
    parser.add_argument("--model-opt", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--method-opt", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sparsity", type=float, default=0.7, help="of the linear layers (paper: 70 %%)")
    parser.add_argument("--topology", default="cht", help="how the masks are set and evolve in training")
    parser.add_argument("--epochs", type=int, default=5, help="ANN (fine-)tuning epochs")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--t-max", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_dataset(args.dataset, root=args.data_root, image_size=args.image_size)
    ann = build_model(args.model, data.num_classes, data.in_shape, **dict(args.model_opt)).to(args.device)

    # 1. Sparse ANN: masks on the linear layers (the classifier stays dense), evolved while training.
    cfg = FitConfig(epochs=args.epochs, lr=args.lr, batch_size=64, optimizer="adamw", weight_decay=0.05)
    optimizer = make_optimizer(ann.parameters(), cfg)
    steps = cfg.epochs * len(make_loader(data.train, cfg.batch_size, shuffle=False))
    # from pretrained weights, the paper's pipeline: magnitude pruning, then CHT fine-tuning
    options = {"init_topology": "magnitude"} if "pretrained" in dict(args.model_opt) and args.topology == "cht" else {}
    topology = build_topology(args.topology, ann, optimizer, args.sparsity, total_steps=steps, **options)
    fit(ann, data.train, cfg, device=args.device, optimizer=optimizer, after_step=topology.step, desc="ViT")
    print(f"ANN: accuracy {accuracy(ann, data.test, device=args.device):.4f}, density {density(ann).network:.3f}")

    # 2. SpikeZIP-TF: quantized ANN (QAT), then ST-BIF+ neurons and spike-equivalent operators.
    method = get_method("spikezip")(**dict(args.method_opt))
    prepared = method.prepare(ann, MethodContext(data, device=torch.device(args.device)))
    snn = method.convert(prepared)

    # 3. Accuracy, MASFR and energy at every t <= T_max, from one run of T_max steps.
    curves = evaluate_over_time(snn, data.test, args.t_max, device=args.device)
    for t in sorted({1, args.t_max // 4, args.t_max // 2, args.t_max} - {0}):
        at = curves.at(t)
        print(f"T={t:3d}: accuracy {at['accuracy']:.4f}, MASFR {at['masfr']:.4f}, energy {at['energy_uj']:.4g} uJ")


if __name__ == "__main__":
    main()
