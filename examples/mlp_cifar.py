"""Dense vs sparse MLP, converted to SNNs (paper Figure 2 and Table 1, rows "MLP").

A dense MLP and a CHT-trained sparse one are trained, converted by ``--method`` and
simulated for t = 1..T_max; the report (Table 1, Table A4, Figures 2 and 3) lands in
``--out``. Runs whose ``result.json`` exists are reused.

    python examples/mlp_cifar.py                                   # digits, about a minute on 2 CPU cores
    python examples/mlp_cifar.py --dataset mnist1d                 # MNIST-1D (generated), a few minutes
    python examples/mlp_cifar.py --dataset cifar10 --data-root DIR --download --device cuda   # the paper's MLP
    python examples/mlp_cifar.py --dataset cifar100 --data-root DIR --method snm

On CIFAR the MLP is 3 x 3000 hidden units and the sparse one keeps 1 % of the links of
its hidden layers (the output layer stays dense), as in the paper.
"""

from __future__ import annotations

from _pair_cli import pair_config, pair_parser, pair_report

from sparse_convert.experiments import run_dense_and_sparse
from sparse_convert.training import FitConfig

#: Per dataset: sparsity of the sparse MLP, ANN training stage, T_max (paper §2.4 and Table A1 on CIFAR).
SETTINGS = {
    "digits": {"sparsity": 0.9, "train": FitConfig(epochs=10, lr=0.05, batch_size=64), "t_max": 32},
    "mnist1d": {"sparsity": 0.9, "train": FitConfig(epochs=20, lr=0.05, batch_size=64), "t_max": 64},
    "cifar10": {"sparsity": 0.99, "train": FitConfig(epochs=100, lr=0.025, batch_size=32), "t_max": 64},
    "cifar100": {"sparsity": 0.99, "train": FitConfig(epochs=100, lr=0.025, batch_size=32), "t_max": 64},
}


def main() -> None:
    args = pair_parser(__doc__.splitlines()[0], SETTINGS, "examples-out/mlp").parse_args()
    settings = SETTINGS[args.dataset]
    results = run_dense_and_sparse(pair_config(args, settings, "mlp"), settings["sparsity"], args.out,
                                   force=args.force)
    pair_report(results, f"MLP on {args.dataset}", args.out)


if __name__ == "__main__":
    main()
