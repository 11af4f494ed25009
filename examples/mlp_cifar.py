"""Dense vs sparse MLP, converted to SNNs (paper Figure 2 and Table 1, rows "MLP").

A dense MLP and a CHT-trained sparse one are trained, converted by ``--method`` and
simulated for t = 1..T_max; the report (Table 1, Table A4, Figures 2 and 3) lands in
``--out``. Runs whose ``result.json`` exists are reused.

    python examples/mlp_cifar.py                                   # digits, about a minute on 2 CPU cores
    python examples/mlp_cifar.py --dataset cifar10 --data-root DIR --download --device cuda   # the paper's MLP
    python examples/mlp_cifar.py --dataset cifar100 --data-root DIR --method snm

On CIFAR the MLP is 3 x 3000 hidden units and the sparse one keeps 1 % of the links of
its hidden layers (the output layer stays dense), as in the paper.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sparse_convert.analysis.report import build_report, write_report
from sparse_convert.analysis.tables import table_1, to_markdown
from sparse_convert.experiments import RunConfig, run_dense_and_sparse
from sparse_convert.methods import available_methods, get_method
from sparse_convert.training import FitConfig

#: Per dataset: sparsity of the sparse MLP, ANN training stage, T_max (paper §2.4 and Table A1 on CIFAR).
SETTINGS = {
    "digits": {"sparsity": 0.9, "train": FitConfig(epochs=10, lr=0.05, batch_size=64), "t_max": 32},
    "cifar10": {"sparsity": 0.99, "train": FitConfig(epochs=100, lr=0.025, batch_size=32), "t_max": 64},
    "cifar100": {"sparsity": 0.99, "train": FitConfig(epochs=100, lr=0.025, batch_size=32), "t_max": 64},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SETTINGS), default="digits")
    parser.add_argument("--data-root", default=None, help="folder with the CIFAR archives (not needed for digits)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    parser.add_argument("--method", choices=available_methods(), default="qcfs")
    parser.add_argument("--epochs", type=int, default=None, help="ANN training epochs (default: per dataset)")
    parser.add_argument("--method-epochs", type=int, default=None,
                        help="epochs of each fine-tuning stage of the method (qcfs, aec)")
    parser.add_argument("--t-max", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="examples-out/mlp")
    args = parser.parse_args()

    settings = SETTINGS[args.dataset]
    train = settings["train"]
    if args.epochs is not None:
        train = FitConfig(epochs=args.epochs, lr=train.lr, batch_size=train.batch_size)
    method_options = {} if args.method_epochs is None else get_method(args.method).with_stage_epochs(args.method_epochs)
    out = Path(args.out)
    config = RunConfig(model="mlp", dataset=args.dataset, method=args.method, t_max=args.t_max or settings["t_max"],
                       seed=args.seed, train=train, method_options=method_options, data_root=args.data_root,
                       download=args.download, device=args.device)
    results = run_dense_and_sparse(config, settings["sparsity"], out)

    print(to_markdown(table_1(results)))
    written = write_report(build_report(results, title=f"MLP on {args.dataset}", source=str(out)), out / "report.md")
    print(f"report: {written[0]}")


if __name__ == "__main__":
    main()
