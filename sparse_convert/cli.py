"""``sparse-convert``: the command line. Subcommands: ``run``, ``demo``, ``sweep``, ``report``.

Bad input prints ``error: <what is wrong>`` and exits with status 2, leaving no partial
output behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_BAD_INPUT = 2


def _key_value(text: str) -> tuple[str, Any]:
    """Parse ``key=value``; the value is JSON when it parses as JSON, else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="mlp", help="architecture (mlp, vgg16, ...)")
    p.add_argument("--dataset", default="digits", help="digits (bundled), cifar10, cifar100, imagenet")
    p.add_argument("--data-root", default=None, help="folder holding the dataset (not needed for digits)")
    p.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    p.add_argument("--image-size", type=int, default=None, help="resize inputs to this side (default: native)")
    p.add_argument("--sparsity", type=float, default=0.0, help="fraction of removed links in sparse layers, [0, 1)")
    p.add_argument("--topology", default="static",
                   help="how masks are set and evolve: static, cht, set, rigl, magnitude, depgraph")
    p.add_argument("--method", default="qcfs", help="conversion method: qcfs, snm, aec, spikezip")
    p.add_argument("--t-max", type=int, default=64, help="time steps to simulate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30, help="ANN training epochs")
    p.add_argument("--lr", type=float, default=0.05, help="ANN learning rate (cosine-annealed)")
    p.add_argument("--batch-size", type=int, default=64, help="ANN training batch size")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--optimizer", default="sgd", help="sgd, adamw or adam")
    p.add_argument("--model-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help='architecture option, e.g. width=0.25 or hidden=[512,512]; repeatable')
    p.add_argument("--method-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="conversion option, e.g. levels=8; repeatable")
    p.add_argument("--topology-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="topology option; repeatable")
    p.add_argument("--ann", default=None, metavar="FILE", help="skip training: load this ANN checkpoint (.safetensors)")
    p.add_argument("--pretrained", default=None, metavar="FILE",
                   help="start the model from these weights (a local .safetensors, e.g. timm's ViT-B/16)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--chunk", type=int, default=8, help="time steps simulated per forward call")
    p.add_argument("--e-mac-pj", type=float, default=None, help="energy per MAC in pJ (default 4.6)")
    p.add_argument("--e-ac-pj", type=float, default=None, help="energy per AC in pJ (default 0.9)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_config(args: argparse.Namespace):
    from .experiments.config import RunConfig
    from .training import FitConfig

    energy = {k: v for k, v in (("e_mac_pj", args.e_mac_pj), ("e_ac_pj", args.e_ac_pj)) if v is not None}
    model_options = dict(args.model_opt)
    if args.pretrained is not None:
        model_options["pretrained"] = args.pretrained
    return RunConfig(
        model=args.model, dataset=args.dataset, method=args.method, sparsity=args.sparsity,
        topology=args.topology, t_max=args.t_max, seed=args.seed,
        train=FitConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                        weight_decay=args.weight_decay, optimizer=args.optimizer),
        model_options=model_options, method_options=dict(args.method_opt),
        topology_options=dict(args.topology_opt), data_root=args.data_root, download=args.download,
        image_size=args.image_size, eval_batch_size=args.eval_batch_size, chunk=args.chunk,
        device=args.device, **energy)


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments.runner import run

    config = _run_config(args)
    result = run(config, args.out, ann_checkpoint=args.ann, progress=not args.quiet)
    chosen = result["chosen"]
    print(f"ANN accuracy {100 * result['ann_accuracy']:.2f}% | density {result['density']['network']:.4f} | "
          f"SNN at T={chosen['t']} ({chosen['rule']}): accuracy {100 * chosen['accuracy']:.2f}%, "
          f"energy {chosen['energy_uj']:.4g} uJ/image | results in {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .analysis.tables import to_markdown
    from .experiments.demo import TABLE_COLUMNS, run_demo

    out = run_demo(args.out, t_max=args.t_max, seed=args.seed, progress=not args.quiet)
    print(to_markdown(out.rows, TABLE_COLUMNS))
    print(f"table: {out.table_md}, {out.table_csv}\nfigure: {', '.join(map(str, out.figure))}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import BEST_FILE, load_sweep, print_progress, run_name, sweep

    configs = load_sweep(args.file)
    if args.dry_run:
        for config in configs:
            print(run_name(config.to_dict()))
        print(f"{len(configs)} configurations")
        return 0
    summary = sweep(configs, args.out, workers=args.workers, backend=args.backend,
                    report=None if args.quiet else print_progress)
    print(f"{summary.line()} | results in {args.out}/runs, best configurations in {args.out}/{BEST_FILE}")
    for name, error in summary.failed.items():
        print(f"failed: {name}: {error}", file=sys.stderr)
    return 0 if summary.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import build_report, write_report
    from .experiments.sweep import collect_results

    results = collect_results(args.folder)
    if not results:
        raise ValueError(f"no result.json under {args.folder}: nothing to report")
    written = write_report(build_report(results, source=str(args.folder)), args.out)
    print(f"report: {written[0]} ({len(results)} runs; {len(written) - 1} figure and table files beside it)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparse-convert", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train, convert and evaluate one configuration")
    _add_run_arguments(p_run)
    p_run.add_argument("--out", required=True, help="folder for result.json and the ANN checkpoint")
    p_run.set_defaults(func=_cmd_run)
    p_demo = sub.add_parser("demo", help="dense vs sparse MLP on digits through every method")
    p_demo.add_argument("--out", default="demo", help="output folder (default: ./demo)")
    p_demo.add_argument("--t-max", type=int, default=64)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--quiet", action="store_true")
    p_demo.set_defaults(func=_cmd_demo)
    p_sweep = sub.add_parser("sweep", help="run a grid search described in a TOML file (resumable)")
    p_sweep.add_argument("file", help="sweep file, e.g. examples/sweep_digits.toml")
    p_sweep.add_argument("--out", required=True, help="sweep folder: runs/<name>/result.json, best.json")
    p_sweep.add_argument("--workers", type=int, default=1, help="configurations run at once (default 1)")
    p_sweep.add_argument("--backend", choices=["local", "ray"], default="local",
                         help="local process pool, or Ray Tune (pip install 'sparse-convert[ray]')")
    p_sweep.add_argument("--dry-run", action="store_true", help="list the configurations and exit")
    p_sweep.add_argument("--quiet", action="store_true", help="no line per finished configuration")
    p_sweep.set_defaults(func=_cmd_sweep)
    p_report = sub.add_parser("report", help="tables, figures and statistics of a folder of results")
    p_report.add_argument("folder", help="folder searched for result.json files (a sweep's or the demo's --out)")
    p_report.add_argument("--out", required=True,
                          help="report to write, Markdown (.md) or HTML (.html); figures and tables go beside it")
    p_report.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparse-convert`` console script."""
    from .allocator import fix_mmap_threshold

    fix_mmap_threshold()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError, FloatingPointError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
