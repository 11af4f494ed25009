"""One run: train a (sparse) ANN, convert it, simulate the SNN over time, write the results."""

from __future__ import annotations

import copy
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..analysis.saturation import best_window, saturation_block
from ..data import DataSplits, load_dataset
from ..energy import TimeCurves, evaluate_over_time
from ..methods import ConversionMethod, MethodContext, get_method
from ..models import build_model
from ..topology import build_topology, density
from ..training import accuracy, fit, make_loader, make_optimizer
from .config import RunConfig
from .result import ANN_RESULT_FILE, RESULT_FILE, AnnResult, RunResult
from .store import (
    load_checkpoint,
    read_checkpoint_meta,
    remove_stale_stages,
    save_checkpoint,
    staged_output,
)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a CPU run is repeatable."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, refusing CUDA when torch sees no GPU."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but torch sees no CUDA GPU")
    return device


def train_ann(config: RunConfig, data: DataSplits, device: torch.device, progress: bool
              ) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model, attach its topology and train it; returns (model, topology summary)."""
    model = build_model(config.model, data.num_classes, data.in_shape, **config.model_options).to(device)
    optimizer = make_optimizer(model.parameters(), config.train)
    steps = config.train.epochs * len(make_loader(data.train, config.train.batch_size, shuffle=False))
    options = dict(config.topology_options)
    if options.get("init_topology") == "csti":  # the correlated-input start needs training inputs
        options["csti_inputs"] = torch.stack([data.train[i][0] for i in range(min(len(data.train), 10000))])
    topology = build_topology(config.topology, model, optimizer, config.sparsity, total_steps=steps,
                              seed=config.seed, **options)
    fit(model, data.train, config.train, device=device, seed=config.seed, optimizer=optimizer,
        after_step=topology.step, desc=f"ANN {config.model}", progress=progress)
    return model, topology.summary()


def _checkpoint_meta(config: RunConfig, data: DataSplits) -> dict[str, Any]:
    return {"model": config.model, "model_options": config.model_options, "num_classes": data.num_classes,
            "in_shape": list(data.in_shape), "dataset": config.dataset, "config": config.to_dict()}


def _load_data(config: RunConfig) -> DataSplits:
    return load_dataset(config.dataset, root=config.data_root, download=config.download,
                        image_size=config.resolved_image_size())


def train_stage(config: RunConfig, out: str | os.PathLike | None = None, *, progress: bool = True
                ) -> dict[str, Any]:
    """The ANN stage alone: train the ANN of ``config`` (its ANN-stage fields) and evaluate it.

    With ``out``, writes ``ann.safetensors`` + ``ann.json`` and ``ann_result.json`` (written last) there,
    all or nothing. Returns the ``ann_result.json`` document: ANN test and validation accuracy, density,
    topology summary and training time. ``run(config, ann_checkpoint=out / "ann.safetensors")`` then
    gives exactly what ``run(config)`` gives.
    """
    config.validate()
    device = resolve_device(config.device)
    if out is not None:
        remove_stale_stages(out)
    seed_everything(config.seed)
    data = _load_data(config)
    start = time.perf_counter()
    ann, topology = train_ann(config, data, device, progress)
    train_s = time.perf_counter() - start
    ann_result = AnnResult(
        ann_stage=config.ann_stage(), config=config.to_dict(), ann_accuracy=accuracy(ann, data.test, device=device),
        ann_val_accuracy=accuracy(ann, data.val, device=device) if len(data.val) else None,
        density=density(ann).to_dict(), topology=topology, timing={"train_s": train_s}, environment=_environment(),
    )
    if out is not None:
        with staged_output(out, last=ANN_RESULT_FILE) as stage:
            save_checkpoint(ann, stage / "ann", _checkpoint_meta(config, data))
            ann_result.save(stage / ANN_RESULT_FILE)
    return ann_result.to_dict()


def run(config: RunConfig, out: str | os.PathLike | None = None, *,
        ann_checkpoint: str | os.PathLike | None = None, progress: bool = True,
        save_ann: bool = True) -> dict[str, Any]:
    """Train (or load) the ANN, convert it with ``config.method``, evaluate every t ≤ t_max.

    With ``out``, writes ``result.json`` and (unless ``save_ann`` is False) ``ann.safetensors`` +
    ``ann.json`` there, all or nothing. Returns the result dictionary. The conversion starts from
    the same random state whether the ANN was trained here or loaded, so both give the same numbers.
    """
    config.validate()
    device = resolve_device(config.device)
    if out is not None:
        remove_stale_stages(out)  # a killed earlier run's staging folder
    if ann_checkpoint is not None:
        check_checkpoint_agrees(config, read_checkpoint_meta(ann_checkpoint), ann_checkpoint)  # before the data
    seed_everything(config.seed)
    clock = {}
    data = _load_data(config)
    method = get_method(config.method)(**config.method_options)

    start = time.perf_counter()
    if ann_checkpoint is not None:
        ann, meta = load_checkpoint(ann_checkpoint, device)
        if meta["num_classes"] != data.num_classes or tuple(meta["in_shape"]) != data.in_shape:
            raise ValueError(f"checkpoint {ann_checkpoint} is for {meta['num_classes']} classes of shape "
                             f"{tuple(meta['in_shape'])}, but {config.dataset} has {data.num_classes} of "
                             f"{data.in_shape}")
        topology = _checkpoint_topology(ann_checkpoint, ann)
    else:
        ann, topology = train_ann(config, data, device, progress)
    clock["train_s"] = time.perf_counter() - start
    ann_acc = accuracy(ann, data.test, device=device)
    ann_val_acc = accuracy(ann, data.val, device=device) if len(data.val) else None

    seed_everything(config.seed)  # the conversion stage: the same start, trained or loaded
    start = time.perf_counter()
    ctx = MethodContext(data, device=device, seed=config.seed, progress=progress)
    prepared = method.prepare(copy.deepcopy(ann), ctx)
    clock["prepare_s"] = time.perf_counter() - start
    prepared_acc = accuracy(prepared, data.test, device=device)

    start = time.perf_counter()
    energy = config.energy()
    simulate = simulate_windows if method.time_mode == "window" else simulate_integrating
    timeline = simulate(method, prepared, data, config, energy=energy, device=device, progress=progress)
    clock["evaluate_s"] = time.perf_counter() - start

    result = RunResult(
        config=config.to_dict(), time_mode=method.time_mode, ann_accuracy=ann_acc, ann_val_accuracy=ann_val_acc,
        converted_ann_accuracy=prepared_acc, density=density(ann).to_dict(), topology=topology, **timeline,
        energy_model=energy.to_dict(), timing=clock, environment=_environment(),
    )
    if out is not None:
        with staged_output(out) as stage:
            if save_ann:
                save_checkpoint(ann, stage / "ann", _checkpoint_meta(config, data))
            result.save(stage / RESULT_FILE)
    return result.to_dict()


def _checkpoint_topology(path: str | os.PathLike, ann: nn.Module) -> dict[str, Any]:
    """The topology block of a run that loaded its ANN: the ANN stage's summary where its
    ``ann_result.json`` lies beside the checkpoint, else the density alone."""
    stage_result = Path(path).with_name(ANN_RESULT_FILE)
    if stage_result.is_file():
        summary = AnnResult.load(stage_result).topology
        if summary is not None:
            return {**summary, "source": str(path)}
    return {"rule": "checkpoint", "source": str(path), "density": density(ann).to_dict()}


def _environment() -> dict[str, Any]:
    return {"sparse_convert": __version__, "torch": torch.__version__, "spikingjelly": _version("spikingjelly"),
            "python": platform.python_version()}


def check_checkpoint_agrees(config: RunConfig, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a run whose ANN-stage fields contradict the checkpoint it converts, so that result.json
    records what ran. A sidecar with the config it was trained with is compared field by field; an
    older one without it by model, model options and dataset."""
    stored = meta.get("config")
    if isinstance(stored, dict):
        try:
            trained = RunConfig.from_dict(stored)
        except (TypeError, ValueError) as err:
            raise ValueError(f"the sidecar of checkpoint {path} holds an unreadable config: {err}") from None
        differences = config.ann_stage_differences(trained)
    else:
        differences = [f"{key}: {getattr(config, key)!r} vs {meta[key]!r}" for key in ("model", "model_options")
                       if getattr(config, key) != meta[key]]
        if "dataset" in meta and meta["dataset"] != config.dataset:
            differences.append(f"dataset: {config.dataset!r} vs {meta['dataset']!r}")
    if differences:
        raise ValueError(f"the run contradicts checkpoint {path} (requested vs trained): {'; '.join(differences)}. "
                         "With --ann, leave the ANN's flags out (they are read from the checkpoint) or train anew")


def _evaluate(snn: nn.Module, dataset, steps: int, config: RunConfig, **kwargs: Any) -> TimeCurves:
    return evaluate_over_time(snn, dataset, steps, batch_size=config.eval_batch_size, chunk=config.chunk, **kwargs)


def simulate_integrating(method: ConversionMethod, prepared: nn.Module, data: DataSplits, config: RunConfig,
                         **kwargs: Any) -> dict[str, Any]:
    """One run of t_max steps gives every T; the chosen T is where test accuracy saturates."""
    snn = method.convert(prepared)
    curves = _evaluate(snn, data.test, config.t_max, config, **kwargs)
    val = _evaluate(snn, data.val, config.t_max, config, **kwargs) if len(data.val) else None
    saturation = saturation_block(curves.accuracy, curves.masfr, layers=curves.layer_masfr)
    saturated = saturation["accuracy"]["saturated"]
    chosen_t = saturation["accuracy"]["t"] if saturated else config.t_max
    return {
        "per_step": curves.per_step(),
        "per_step_val": {"t": val.t, "accuracy": val.accuracy} if val else None,
        "saturation": saturation,
        "chosen": {"t": chosen_t,
                   "rule": "accuracy saturation" if saturated else "t_max (accuracy did not saturate)",
                   **{k: v for k, v in curves.at(chosen_t).items() if k != "t"},
                   "val_accuracy": val.at(chosen_t)["accuracy"] if val else None},
        "neurons": curves.neurons, "images": curves.images, "roles": curves.roles,
        "layer_events": curves.layer_events,
        "per_layer": curves.per_layer(),  # each spiking layer's firing-rate curve, test set, same run
        "neurobench": _neurobench(lambda: snn, data, config.t_max, chosen_t, config, kwargs.get("device", "cpu")),
    }


def _neurobench(make_snn: Callable[[], nn.Module], data: DataSplits, steps: int, chosen_t: int, config: RunConfig,
                device: Any) -> dict[str, Any] | None:
    """The ``neurobench`` block (``config.neurobench``): NeuroBench's metrics of the SNN ``make_snn()`` builds
    (only when the block is asked for) on the test set at the chosen T and after ``steps`` steps, from a second
    run of the same simulation."""
    if not config.neurobench:
        return None
    from ..energy.neurobench import neurobench_block, neurobench_over_time

    curves = neurobench_over_time(make_snn(), data.test, steps, batch_size=config.eval_batch_size, chunk=config.chunk,
                                  device=device)
    return neurobench_block(curves, chosen_t)


WINDOW_NOTE = ("T is a window size: one SNN run per T in windows.t, each of windows.steps_simulated steps "
               "((depth + 1) * T); per_step holds values only at those T and null elsewhere; mac, ac, energy_uj "
               "and masfr cover all simulated steps of that run")


def simulate_windows(method: ConversionMethod, prepared: nn.Module, data: DataSplits, config: RunConfig,
                     **kwargs: Any) -> dict[str, Any]:
    """One run per window size T; the chosen T is the window with the highest test accuracy (paper §3.2)."""
    windows = method.windows(config.t_max)
    keys = ("accuracy", "masfr", "mac", "ac", "energy_uj")
    per_step: dict[str, list] = {"t": list(range(1, config.t_max + 1)), **{k: [None] * config.t_max for k in keys}}
    val_acc: list[float | None] = [None] * config.t_max
    runs, simulated = {}, []
    for window in windows:
        snn = method.convert(prepared, window=window)
        steps = snn.latency or window
        runs[window] = curves = _evaluate(snn, data.test, steps, config, **kwargs)
        for key, value in curves.at(steps).items():
            if key != "t":
                per_step[key][window - 1] = value
        if len(data.val):
            val_acc[window - 1] = _evaluate(snn, data.val, steps, config, **kwargs).accuracy[-1]
        simulated.append(steps)
    best_t, _ = best_window(windows, [per_step["accuracy"][w - 1] for w in windows])
    best, best_steps = runs[best_t], simulated[windows.index(best_t)]
    return {
        "per_step": per_step,
        "per_step_val": {"t": per_step["t"], "accuracy": val_acc} if len(data.val) else None,
        "windows": {"t": windows, "steps_simulated": simulated, "note": WINDOW_NOTE},
        "saturation": None,
        "chosen": {"t": best_t, "rule": "best window (highest accuracy)",
                   **{k: per_step[k][best_t - 1] for k in keys}, "val_accuracy": val_acc[best_t - 1]},
        "neurons": best.neurons, "images": best.images, "roles": best.roles,
        "layer_events": best.layer_events,
        "per_layer": None,  # a window has no time course
        "neurobench": _neurobench(lambda: method.convert(prepared, window=best_t), data, best_steps, best_steps,
                                  config, kwargs.get("device", "cpu")),  # the best window's run, all its steps
    }


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """``RunResult.load(path).to_dict()``: a checked ``result.json`` (or the one inside folder ``path``)."""
    return RunResult.load(path).to_dict()
