"""``sparse-convert``: the command line. Subcommands: ``run``, ``demo``, ``sweep``, ``report``.

Bad input prints one line ``error: <what is wrong>`` and exits with status 2, leaving no partial
output behind; output paths are checked before any training. ``main`` is the one place that turns
the exceptions of bad input (``BAD_INPUT``) into that line, argparse's usage errors included.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

EXIT_BAD_INPUT = 2


class UsageError(ValueError):
    """A command line that argparse refuses (an unknown flag, a value of the wrong type)."""


#: Exceptions that mean bad input: ``main`` prints their message as ``error: ...`` and exits with status 2.
#: (``KeyError`` is raised on purpose for an unknown layer name.)
BAD_INPUT = (ValueError, FileNotFoundError, KeyError, FloatingPointError)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are exceptions for ``main``, not a usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} -h)")


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
    """The flags of one run. Their defaults are ``RunConfig``'s (or, with ``--ann``, the checkpoint's for the
    ANN's flags), so every flag defaults to None here: None means "not given"."""
    from .data import available_datasets
    from .energy import ENERGY_MODELS
    from .experiments.config import RunConfig
    from .methods import available_methods
    from .models import available_models
    from .topology import available_topologies

    d, t = RunConfig(), RunConfig().train
    p.add_argument("--model", help=f"architecture: {', '.join(available_models())} (default {d.model})")
    p.add_argument("--dataset", help=f"{', '.join(available_datasets())} (default {d.dataset}, bundled)")
    p.add_argument("--data-root", help="folder holding the dataset (not needed for digits and mnist1d)")
    p.add_argument("--download", action="store_true", default=None, help="download CIFAR into --data-root if missing")
    p.add_argument("--image-size", type=int, help="resize inputs to this side (default: native)")
    p.add_argument("--sparsity", type=float, help=f"fraction of removed links in sparse layers, [0, 1) "
                                                  f"(default {d.sparsity})")
    p.add_argument("--topology", help=f"how masks are set and evolve: {', '.join(available_topologies())} "
                                      f"(default {d.topology})")
    p.add_argument("--method", help=f"conversion method: {', '.join(available_methods())} (default {d.method})")
    p.add_argument("--t-max", type=int, help=f"time steps to simulate (default {d.t_max})")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--epochs", type=int, help=f"ANN training epochs (default {t.epochs})")
    p.add_argument("--lr", type=float, help=f"ANN learning rate, cosine-annealed (default {t.lr})")
    p.add_argument("--batch-size", type=int, help=f"ANN training batch size (default {t.batch_size})")
    p.add_argument("--weight-decay", type=float, help=f"default {t.weight_decay}")
    p.add_argument("--optimizer", help=f"sgd, adamw or adam (default {t.optimizer})")
    p.add_argument("--model-opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help='architecture option, e.g. width=0.25 or hidden=[512,512]; repeatable')
    p.add_argument("--method-opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="conversion option, e.g. levels=8; repeatable")
    p.add_argument("--topology-opt", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="topology option; repeatable")
    p.add_argument("--ann", metavar="FILE",
                   help="skip training: convert this ANN checkpoint (.safetensors); the ANN's flags (model, dataset, "
                        "sparsity, topology, training, seed and their options) default to the checkpoint's, and a "
                        "flag that contradicts it is an error")
    p.add_argument("--pretrained", metavar="FILE",
                   help="start the model from these weights (a local .safetensors, e.g. timm's ViT-B/16)")
    p.add_argument("--device", help=f"cpu or cuda[:N] (default {d.device})")
    p.add_argument("--eval-batch-size", type=int, help=f"default {d.eval_batch_size}")
    p.add_argument("--chunk", type=int, help=f"time steps simulated per forward call (default {d.chunk})")
    p.add_argument("--e-mac-pj", type=float, help=f"energy per MAC in pJ (default {d.e_mac_pj})")
    p.add_argument("--e-ac-pj", type=float, help=f"energy per AC in pJ (default {d.e_ac_pj})")
    p.add_argument("--energy-model", choices=list(ENERGY_MODELS), metavar="NAME",
                   help=f"a named energy model instead of the two prices: {', '.join(ENERGY_MODELS)} (the default "
                        "prices are 45nm-fp32's)")
    p.add_argument("--neurobench", action="store_true", default=None,
                   help="add NeuroBench's metrics (synaptic operations, sparsities) to result.json; a second "
                        "simulation of the test set")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


#: Flags that set a RunConfig field of the same name, and those that set a training (FitConfig) field.
_CONFIG_FLAGS = ("model", "dataset", "data_root", "download", "image_size", "sparsity", "topology", "method",
                 "t_max", "seed", "device", "eval_batch_size", "chunk", "e_mac_pj", "e_ac_pj", "energy_model",
                 "neurobench")
_TRAIN_FLAGS = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "weight_decay": "weight_decay",
                "optimizer": "optimizer"}
_OPTION_FLAGS = {"model_opt": "model_options", "method_opt": "method_options", "topology_opt": "topology_options"}


def _base_config(ann: str | None) -> dict[str, Any]:
    """RunConfig's defaults; with ``--ann``, the ANN-stage fields of the config the checkpoint was trained with."""
    from .experiments.config import ANN_STAGE_FIELDS, RunConfig
    from .experiments.store import read_checkpoint_meta

    base = RunConfig().to_dict()
    if ann is None:
        return base
    meta = read_checkpoint_meta(ann)
    trained = meta.get("config")
    if isinstance(trained, dict):
        base.update({k: trained[k] for k in ANN_STAGE_FIELDS if k in trained}, data_root=trained.get("data_root"))
    else:  # an older sidecar: it names the architecture and the dataset only
        base.update({k: meta[k] for k in ("model", "model_options", "dataset") if k in meta})
    return base


def _run_config(args: argparse.Namespace):
    from .experiments.config import RunConfig

    config = _base_config(args.ann)
    config.update({k: getattr(args, k) for k in _CONFIG_FLAGS if getattr(args, k) is not None})
    config["train"] = dict(config["train"], **{field: getattr(args, flag) for flag, field in _TRAIN_FLAGS.items()
                                                if getattr(args, flag) is not None})
    for flag, key in _OPTION_FLAGS.items():
        config[key] = dict(config[key], **dict(getattr(args, flag) or []))
    if args.pretrained is not None:
        config["model_options"]["pretrained"] = args.pretrained
    return RunConfig.from_dict(config)


def _cmd_run(args: argparse.Namespace) -> int:
    from .experiments.runner import run
    from .experiments.store import check_run_output

    check_run_output(args.out, force=args.force)
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

    out = run_demo(args.out, t_max=args.t_max, seed=args.seed, progress=not args.quiet, force=args.force)
    print(to_markdown(out.rows, TABLE_COLUMNS))
    print(f"table: {out.table_md}, {out.table_csv}\nfigure: {', '.join(map(str, out.figure))}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .experiments.sweep import BEST_FILE, dry_run_line, load_sweep, load_sweep_options, plan, print_progress, sweep
    from .fileio import check_writable

    if args.out is None and not args.dry_run:
        raise ValueError("sweep needs --out DIR (the sweep folder); only --dry-run goes without it")
    if not args.dry_run:
        check_writable(args.out, "--out", folder=True)
    configs = load_sweep(args.file)
    options = load_sweep_options(args.file)
    if args.dry_run:
        tasks = plan(configs, options.convert, options.share)
        for task in tasks:
            print(f"{task.kind:10s} {task.name}")
        print(dry_run_line(tasks, len(configs), args.out))
        return 0
    summary = sweep(configs, args.out, workers=args.workers, backend=args.backend, options=options,
                    report=None if args.quiet else print_progress, cpus_per_trial=args.cpus_per_trial,
                    gpus_per_trial=args.gpus_per_trial)
    print(f"{summary.line()} | results in {args.out}/runs, best configurations in {args.out}/{BEST_FILE}")
    for name, error in summary.failed.items():
        print(f"failed: {name}: {error}", file=sys.stderr)
    return 0 if summary.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from .analysis.report import build_report, check_report_path, write_report
    from .experiments.sweep import collect_results, stage_table

    check_report_path(args.out)
    skipped: dict[Path, str] = {}
    results = collect_results(args.folder, skipped)
    for why in skipped.values():
        print(f"warning: skipped: {why}", file=sys.stderr)
    if skipped and not results:
        raise ValueError(f"no readable result.json under {args.folder} ({len(skipped)} unreadable, listed above)")
    if not results:
        raise ValueError(f"no result.json under {args.folder}: nothing to report")
    report = build_report(results, source=str(args.folder), skipped=skipped, stages=stage_table(args.folder))
    written = write_report(report, args.out)
    print(f"report: {written[0]} ({len(results)} runs; {len(written) - 1} figure and table files beside it)")
    return 0


def _add_plugin_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module or .py file first (it may register methods, neurons, models, "
                             "topologies or datasets; sweep workers import it too); repeatable, before the command")


def _load_plugins(argv: Sequence[str] | None) -> None:
    """Import the ``--plugin`` modules (and ``SPARSE_CONVERT_PLUGINS``) before the parser lists the registries."""
    from .plugins import load_plugins

    early = _Parser(add_help=False)
    _add_plugin_argument(early)
    known, _ = early.parse_known_args(argv)
    load_plugins(known.plugin, export=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparse-convert", description=__doc__.splitlines()[0])
    _add_plugin_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train, convert and evaluate one configuration")
    _add_run_arguments(p_run)
    p_run.add_argument("--out", required=True, help="folder for result.json and the ANN checkpoint")
    p_run.add_argument("--force", action="store_true",
                       help="replace a finished run in --out (a folder holding result.json); without it, that is "
                            "an error")
    p_run.set_defaults(func=_cmd_run)
    p_demo = sub.add_parser("demo", help="dense vs sparse MLP on digits through every method")
    p_demo.add_argument("--out", default="demo", help="output folder (default: ./demo)")
    p_demo.add_argument("--t-max", type=int, default=64)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--quiet", action="store_true")
    p_demo.add_argument("--force", action="store_true",
                        help="rerun every run, replacing the finished ones in --out; without it, finished runs of "
                             "the same --seed and --t-max are reused and finished runs of others are an error")
    p_demo.set_defaults(func=_cmd_demo)
    p_sweep = sub.add_parser("sweep", help="run a grid search described in a TOML file (resumable)")
    p_sweep.add_argument("file", help="sweep file, e.g. examples/sweep_digits.toml")
    p_sweep.add_argument("--out", help="sweep folder: anns/<name>/ (trained ANNs), runs/<name>/result.json, "
                                        "best.json; required except with --dry-run")
    p_sweep.add_argument("--workers", type=int, default=1, help="tasks (ANN trainings, conversions) run at once "
                                                                "(default 1)")
    p_sweep.add_argument("--cpus-per-trial", type=float, default=1,
                         help="Ray: CPUs each trial asks for (default 1; its torch threads)")
    p_sweep.add_argument("--gpus-per-trial", type=float, default=0,
                         help="Ray: GPUs each trial asks for, fractional allowed (0.25: four trials share a GPU); "
                              "set [settings] device = \"cuda\"")
    p_sweep.add_argument("--backend", choices=["local", "ray"], default="local",
                         help="local process pool, or Ray Tune (pip install 'sparse-convert[ray]')")
    p_sweep.add_argument("--dry-run", action="store_true",
                         help="list the ANN stages and conversions, count them, and exit")
    p_sweep.add_argument("--quiet", action="store_true", help="no line per finished configuration")
    p_sweep.set_defaults(func=_cmd_sweep)
    p_report = sub.add_parser("report", help="tables, figures and statistics of a folder of results")
    p_report.add_argument("folder", help="folder searched for result.json files (a sweep's or the demo's --out)")
    p_report.add_argument("--out", required=True,
                          help="report to write, Markdown (.md) or HTML (.html); figures and tables go beside it. "
                               "Unreadable result.json files are listed (on stderr and in the report) and left "
                               "out; none readable is an error")
    p_report.set_defaults(func=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparse-convert`` console script."""
    from .allocator import fix_mmap_threshold

    fix_mmap_threshold()
    with warnings.catch_warnings():
        warnings.showwarning = _warnings_as_lines(warnings.showwarning)
        try:
            _load_plugins(argv)
            args = build_parser().parse_args(argv)
            return args.func(args)
        except BAD_INPUT as err:
            message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
            print(f"error: {' '.join(message.split())}", file=sys.stderr)
            return EXIT_BAD_INPUT


def _warnings_as_lines(show: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints this package's warnings as one line ``warning: ...`` on stderr
    and hands the others to ``show``."""
    package = Path(__file__).resolve().parent

    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:
        if Path(filename).resolve().is_relative_to(package):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


if __name__ == "__main__":
    sys.exit(main())
