"""Dense vs 50 %-sparse VGG-16 (one FC layer), converted to SNNs (paper Figure 2 and Table 1, rows "VGG-16").

The convolutions of the sparse VGG-16 keep half of their links (CHT-Conv); the
classifier stays dense. On digits the 8 x 8 images are resized to 32 x 32 and the
network is ``--width`` times as wide as VGG-16, so that it runs on a CPU.

    python examples/vgg16_cifar.py                                 # digits, width 0.125, a few minutes on 2 cores
    python examples/vgg16_cifar.py --dataset cifar10 --data-root DIR --download --device cuda   # the paper's VGG-16
    python examples/vgg16_cifar.py --dataset cifar100 --data-root DIR --method aec --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_convert.analysis.report import build_report, write_report
from sparse_convert.analysis.tables import table_1, to_markdown
from sparse_convert.experiments import RunConfig, run_dense_and_sparse
from sparse_convert.methods import available_methods, get_method
from sparse_convert.training import FitConfig

#: Per dataset: width multiplier, ANN training stage, T_max (paper §2.4 and Table A1 on CIFAR).
SETTINGS = {
    "digits": {"width": 0.125, "train": FitConfig(epochs=3, lr=0.05, batch_size=64), "t_max": 16},
    "cifar10": {"width": 1.0, "train": FitConfig(epochs=200, lr=0.1, batch_size=128), "t_max": 64},
    "cifar100": {"width": 1.0, "train": FitConfig(epochs=200, lr=0.1, batch_size=128), "t_max": 64},
}
SPARSITY = 0.5  # of the convolutions (paper §2.4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SETTINGS), default="digits")
    parser.add_argument("--data-root", default=None, help="folder with the CIFAR archives (not needed for digits)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    parser.add_argument("--method", choices=available_methods(), default="qcfs")
    parser.add_argument("--width", type=float, default=None, help="channel multiplier (default: per dataset)")
    parser.add_argument("--epochs", type=int, default=None, help="ANN training epochs (default: per dataset)")
    parser.add_argument("--method-epochs", type=int, default=None,
                        help="epochs of each fine-tuning stage of the method (qcfs, aec)")
    parser.add_argument("--t-max", type=int, default=None)
    parser.add_argument("--sparse-only", action="store_true", help="skip the dense baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="examples-out/vgg16")
    args = parser.parse_args()

    settings = SETTINGS[args.dataset]
    train = settings["train"]
    if args.epochs is not None:
        train = FitConfig(epochs=args.epochs, lr=train.lr, batch_size=train.batch_size)
    method_options = {} if args.method_epochs is None else get_method(args.method).with_stage_epochs(args.method_epochs)
    out = Path(args.out)
    config = RunConfig(model="vgg16", dataset=args.dataset, method=args.method, t_max=args.t_max or settings["t_max"],
                       seed=args.seed, train=train, model_options={"width": args.width or settings["width"]},
                       method_options=method_options, data_root=args.data_root, download=args.download,
                       device=args.device)
    results = run_dense_and_sparse(config, SPARSITY, out, dense=not args.sparse_only)

    if len(results) == 2:
        print(to_markdown(table_1(results)))
    written = write_report(build_report(results, title=f"VGG-16 on {args.dataset}", source=str(out)),
                           out / "report.md")
    print(f"report: {written[0]}")


if __name__ == "__main__":
    main()
