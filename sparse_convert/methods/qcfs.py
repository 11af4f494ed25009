"""Method 1, CS-QCFS (Yang et al. 2025): S-QCFS fine-tuning, then CS-QCFS, then IF neurons.

1. Every ReLU becomes an ``SQCFS`` activation with ``levels`` steps and one threshold per
   layer, initialised at a percentile of that ReLU's output on training data.
2. The ANN is fine-tuned (layer-wise thresholds, S-QCFS).
3. Each threshold is copied to every channel and the ANN is fine-tuned again (CS-QCFS).
4. Conversion: BatchNorm folds into the convolutions, each ``SQCFS`` becomes a
   ``CSQCFSNode`` with the same thresholds; weights and masks carry over.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

from torch import nn

from ..encoding import DirectEncoder
from ..neurons import SQCFS, CSQCFSNode
from ..training import fit, make_loader
from .base import ConversionMethod, FineTuneOptions, MethodContext, register_method
from .snn import SpikingNetwork
from .transforms import activation_percentiles, named_leaves, probe_inputs, replace_modules


@dataclass
class QCFSOptions(FineTuneOptions):
    """Options of method 1: FitConfig's training fields for both stages, then the method's own.

    ``lr``, ``batch_size`` and ``levels`` are the paper's grid (Table A1). ``epochs`` is the length
    of each stage unless ``layer_epochs`` (S-QCFS) or ``channel_epochs`` (CS-QCFS) sets that stage's.
    """

    fit_defaults = {"epochs": 10, "lr": 0.01, "batch_size": 64, "weight_decay": 5e-4, "optimizer": "sgd"}
    levels: int = 8
    layer_epochs: int | None = None
    channel_epochs: int | None = None
    threshold_percentile: float = 99.9
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.levels < 1:
            raise ValueError(f"levels (L) must be >= 1, got {self.levels}")
        for name in ("layer_epochs", "channel_epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@register_method
class QCFS(ConversionMethod):
    """CS-QCFS conversion: quantized clip-floor-shift ANN → IF neurons with channel-wise thresholds."""

    name = "qcfs"
    epoch_options = ("layer_epochs", "channel_epochs")
    Options = QCFSOptions

    def prepare(self, ann: nn.Module, ctx: MethodContext) -> nn.Module:
        opts = self.options
        relus = list(named_leaves(ann, nn.ReLU))
        if not relus:
            raise ValueError(f"{type(ann).__name__} has no nn.ReLU to replace with S-QCFS")
        ann.to(ctx.device)
        loader = make_loader(ctx.data.train, opts.batch_size, shuffle=True, seed=ctx.seed)
        batches = [x.to(ctx.device) for x, _ in islice(loader, opts.calibration_batches)]
        init = activation_percentiles(ann, batches, relus, opts.threshold_percentile, seed=ctx.seed)
        shapes = probe_inputs(ann, ctx.example_input(), relus)
        replace_modules(ann, nn.ReLU, lambda name, _: SQCFS(opts.levels, max(init[name], 1e-3)))
        fit(ann, ctx.data.train, opts.fit_config(opts.layer_epochs), device=ctx.device, seed=ctx.seed,
            desc="S-QCFS (layer-wise)", progress=ctx.progress)
        for name, act in named_leaves(ann, SQCFS).items():
            act.expand_channels(shapes[name][1])
        fit(ann, ctx.data.train, opts.fit_config(opts.channel_epochs), device=ctx.device, seed=ctx.seed + 1,
            desc="CS-QCFS (channel-wise)", progress=ctx.progress)
        return ann

    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        body = self.snn_body(ann, {SQCFS: lambda _, act: CSQCFSNode.from_activation(act)})
        return SpikingNetwork(body, DirectEncoder())
