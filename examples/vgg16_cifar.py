"""Dense vs 50 %-sparse VGG-16 (one FC layer), converted to SNNs (paper Figure 2 and Table 1, rows "VGG-16").

The convolutions of the sparse VGG-16 keep half of their links (CHT-Conv); the
classifier stays dense. On digits the 8 x 8 images are resized to 32 x 32 and the
network is ``--width`` times as wide as VGG-16, so that it runs on a CPU.

    python examples/vgg16_cifar.py                                 # digits, width 0.125, a few minutes on 2 cores
    python examples/vgg16_cifar.py --dataset cifar10 --data-root DIR --download --device cuda   # the paper's VGG-16
    python examples/vgg16_cifar.py --dataset cifar100 --data-root DIR --method aec --device cuda
"""

from __future__ import annotations

from _pair_cli import pair_config, pair_parser, pair_report

from sparse_convert.experiments import run_dense_and_sparse
from sparse_convert.training import FitConfig

#: Per dataset: width multiplier, ANN training stage, T_max (paper §2.4 and Table A1 on CIFAR).
SETTINGS = {
    "digits": {"width": 0.125, "train": FitConfig(epochs=3, lr=0.05, batch_size=64), "t_max": 16},
    "cifar10": {"width": 1.0, "train": FitConfig(epochs=200, lr=0.1, batch_size=128), "t_max": 64},
    "cifar100": {"width": 1.0, "train": FitConfig(epochs=200, lr=0.1, batch_size=128), "t_max": 64},
}
SPARSITY = 0.5  # of the convolutions (paper §2.4)


def main() -> None:
    parser = pair_parser(__doc__.splitlines()[0], SETTINGS, "examples-out/vgg16")
    parser.add_argument("--width", type=float, default=None, help="channel multiplier (default: per dataset)")
    parser.add_argument("--sparse-only", action="store_true", help="skip the dense baseline")
    args = parser.parse_args()
    settings = SETTINGS[args.dataset]
    config = pair_config(args, settings, "vgg16", model_options={"width": args.width or settings["width"]})
    results = run_dense_and_sparse(config, SPARSITY, args.out, dense=not args.sparse_only, force=args.force)
    pair_report(results, f"VGG-16 on {args.dataset}", args.out)


if __name__ == "__main__":
    main()
