"""What the dense-vs-sparse examples (``mlp_cifar.py``, ``vgg16_cifar.py``) share: their command line,
the run configuration it gives, and the report at the end. Not an example itself."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from sparse_convert.analysis.report import build_report, write_report
from sparse_convert.analysis.tables import table_1, to_markdown
from sparse_convert.experiments import RunConfig
from sparse_convert.methods import available_methods, get_method


def pair_parser(description: str, settings: dict[str, dict], default_out: str) -> argparse.ArgumentParser:
    """Options every dense-vs-sparse example takes; ``settings`` holds the per-dataset defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", choices=sorted(settings), default="digits")
    parser.add_argument("--data-root", default=None,
                        help="folder with the CIFAR archives (not needed for digits or mnist1d)")
    parser.add_argument("--download", action="store_true", help="download CIFAR into --data-root if missing")
    parser.add_argument("--method", choices=available_methods(), default="qcfs")
    parser.add_argument("--epochs", type=int, default=None, help="ANN training epochs (default: per dataset)")
    parser.add_argument("--method-epochs", type=int, default=None,
                        help="epochs of each fine-tuning stage of the method (qcfs, aec, spikezip)")
    parser.add_argument("--t-max", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--force", action="store_true",
                        help="rerun finished runs in --out (a finished run of another configuration is an error)")
    return parser


def pair_config(args: argparse.Namespace, settings: dict[str, Any], model: str, **fields: Any) -> RunConfig:
    """The run configuration of ``model`` that ``args`` and the dataset's ``settings`` describe."""
    train = settings["train"]
    if args.epochs is not None:
        train = dataclasses.replace(train, epochs=args.epochs)
    method_options = {} if args.method_epochs is None else get_method(args.method).with_stage_epochs(args.method_epochs)
    return RunConfig(model=model, dataset=args.dataset, method=args.method, t_max=args.t_max or settings["t_max"],
                     seed=args.seed, train=train, method_options=method_options, data_root=args.data_root,
                     download=args.download, device=args.device, **fields)


def pair_report(results: list[dict], title: str, out: str | Path) -> None:
    """Print Table 1 (when both runs are there) and write the report into ``out``."""
    if len(results) == 2:
        print(to_markdown(table_1(results)))
    written = write_report(build_report(results, title=title, source=str(out)), Path(out) / "report.md")
    print(f"report: {written[0]}")
