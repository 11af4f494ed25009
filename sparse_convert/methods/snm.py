"""Method 2, SNM (Wang et al., IJCAI 2022): neuron-wise normalisation, then signed neurons with memory.

No training: one pass over the training set gives each neuron's threshold, the maximum
(or ``percentile``) of its ReLU output; the ANN's ReLUs become ReLUs clipped there
(``NeuronClip``, which changes nothing on the training set at the maximum), and the SNN
takes ``SNMNode``s with the same thresholds. BatchNorm folds into the convolutions;
max-pooling becomes average pooling; weights and masks carry over. Thresholds are per
neuron of one sample, not per batch element (the reference code ties them to its batch
size); the classifier's output stays analog and is accumulated over time.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from tqdm.auto import tqdm

from ..encoding import DirectEncoder
from ..neurons.snm import NeuronClip, SNMNode
from ..training import make_loader
from .base import ConversionMethod, MethodContext, register_method
from .snn import SpikingNetwork
from .transforms import named_leaves, neuron_percentiles, replace_modules


@dataclass
class SNMOptions:
    """Options of method 2 (its only grid-searched setting in the paper is the batch size, Table A1)."""

    percentile: float = 100.0
    batch_size: int = 128
    v_init: float = 0.0  # initial membrane potential as a fraction of θ (reference: 0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.v_init < 1.0:
            raise ValueError(f"v_init is a fraction of the threshold in [0, 1), got {self.v_init}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


@register_method
class SNM(ConversionMethod):
    """Signed neuron with memory and neuron-wise normalisation."""

    name = "snm"
    Options = SNMOptions

    def prepare(self, ann: nn.Module, ctx: MethodContext) -> nn.Module:
        relus = list(named_leaves(ann, nn.ReLU))
        if not relus:
            raise ValueError(f"{type(ann).__name__} has no nn.ReLU to normalise")
        ann.to(ctx.device)
        loader = make_loader(ctx.data.train, self.options.batch_size, shuffle=False)
        batches = (x.to(ctx.device) for x, _ in tqdm(loader, desc="SNM neuron-wise norm",
                                                     disable=not ctx.progress, leave=False))
        thresholds = neuron_percentiles(ann, batches, relus, self.options.percentile, len(ctx.data.train))
        replace_modules(ann, nn.ReLU, lambda name, _: NeuronClip(thresholds[name]))
        return ann

    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        v_init = self.options.v_init
        body = self.snn_body(ann, {NeuronClip: lambda _, act: SNMNode.from_activation(act, v_init=v_init)})
        return SpikingNetwork(body, DirectEncoder())
