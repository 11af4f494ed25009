"""Method 3, AEC (Chen et al., Neural Networks 2024): at-most-two-spike exponential coding.

1. Every ReLU becomes an ``AECActivation`` (six learnable scalars per layer, the
   reference's CIFAR initial values) and the input is coded by an ``AECEncoder`` (signed
   magnitude code, its thresholds scaled so that the largest value the stepped code sends,
   ``AECInit.max_value``, is the ``input_percentile`` of |pixel|).
2. The network is fine-tuned on those codes and the BatchNorm parameters only (weights
   frozen), in closed form with straight-through ceil, at the window ``train_window``.
3. Conversion for a window T: BatchNorm folds into the convolutions; each activation
   becomes an ``AECNode`` whose depth is its place in the forward pass; each synaptic
   layer's bias is injected once, at step 0 (``BiasOnce``), because every value is sent
   once; the output is complete after ``(depth + 1)·T`` steps (the network's ``latency``).

T is a window size here, so evaluating T = 1..t_max means one run per T (``windows``).

Energy: the first layer receives the encoder's spikes, so all its events are ACs, like
every later layer's. That is what the paper's figures require: its dense CIFAR-10 MLP
costs 21.21 µJ with AEC at T = 64 but 722.69 µJ with CS-QCFS at T = 16, where the
3072 × 3000 first layer alone does 3072·3000·16 MACs (678 µJ); at most two AC spikes per
pixel cost at most 3072·3000·2·0.9 pJ = 16.6 µJ. The AEC paper states that pixel
intensities are encoded into spike times (abstract; the reference code feeds the analog
image once and does not say). A step that carries both spikes of a neuron (or pixel) is
two events per nonzero weight it reaches, and two spikes in the MASFR (``docs/aec.md``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import islice

import torch
from torch import nn

from ..neurons.aec import INITS, AECActivation, AECEncoder, AECNode, AECParams
from ..training import fit, make_loader
from .base import ConversionMethod, FineTuneOptions, MethodContext, register_method
from .snn import SpikingNetwork
from .transforms import call_order, named_leaves, replace_modules


@dataclass
class AECOptions(FineTuneOptions):
    """Options of method 3: FitConfig's training fields, then the method's own. The paper's grid (Table A1)
    searches ``lr`` in (1e-3, 1e-4, 1e-5) for long CIFAR fine-tuning (the reference: Adam, 200 epochs,
    no weight decay); the default ``lr`` suits a short one."""

    fit_defaults = {"epochs": 10, "lr": 1e-2, "batch_size": 64, "weight_decay": 0.0, "optimizer": "adam"}
    init: str = "cifar10"
    train_window: int = 8
    windows: list[int] | None = None
    input_percentile: float = 99.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INITS:
            raise ValueError(f"init must be one of {sorted(INITS)}, got {self.init!r}")
        if self.train_window < 1:
            raise ValueError(f"train_window must be >= 1, got {self.train_window}")
        if self.windows is not None and (not self.windows or any(int(w) < 1 for w in self.windows)):
            raise ValueError(f"windows must be a non-empty list of integers >= 1, got {self.windows}")


class CodedInput(nn.Module):
    """The fine-tuning form of an AEC network: ``body(encoder.quantize(x))`` for inputs of ``in_shape``."""

    def __init__(self, encoder: AECEncoder, body: nn.Module, in_shape: tuple[int, ...]):
        super().__init__()
        self.encoder = encoder
        self.body = body
        self.in_shape = tuple(in_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.encoder.quantize(x))


@register_method
class AEC(ConversionMethod):
    """At-most-two-spike exponential coding, stepped as real events."""

    name = "aec"
    time_mode = "window"
    epoch_options = ("epochs",)
    Options = AECOptions

    def prepare(self, ann: nn.Module, ctx: MethodContext) -> nn.Module:
        opts = self.options
        if not named_leaves(ann, nn.ReLU):
            raise ValueError(f"{type(ann).__name__} has no nn.ReLU to replace with AEC")
        init = INITS[opts.init]
        replace_modules(ann, nn.ReLU, lambda *_: AECActivation(init, opts.train_window))
        loader = make_loader(ctx.data.train, 64, shuffle=True, seed=ctx.seed)
        sample = torch.cat([x for x, _ in islice(loader, 8)]).abs().flatten()
        reach = float(torch.quantile(sample[:1 << 20].float(), opts.input_percentile / 100.0))
        encoder = AECEncoder(init.scaled(max(1.0, reach / init.max_value())), opts.train_window)
        coded = CodedInput(encoder, ann, ctx.data.in_shape).to(ctx.device)
        trainable = _codes_and_batchnorm(coded)
        fit(coded, ctx.data.train, opts.fit_config(),
            device=ctx.device, seed=ctx.seed, params=trainable, desc="AEC fine-tuning", progress=ctx.progress)
        for module in coded.modules():
            if isinstance(module, AECParams):
                module.check()
        return coded

    def build(self, ann: nn.Module, window: int | None) -> SpikingNetwork:
        if not isinstance(ann, CodedInput):
            raise ValueError("the ANN is not an AEC network: run AEC.prepare first")
        window = self.options.train_window if window is None else int(window)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        reference = next(ann.body.parameters())
        example = torch.zeros(1, *ann.in_shape, device=reference.device, dtype=reference.dtype)
        depth = {name: i + 1 for i, name in enumerate(call_order(ann.body, example, AECActivation))}

        def node(name: str, act: AECActivation) -> AECNode:
            return AECNode.from_activation(act, window, depth[name])

        body = self.snn_body(ann.body, {AECActivation: node}, bias_once=True)
        encoder = copy.deepcopy(ann.encoder)
        encoder.window = window
        return SpikingNetwork(body, encoder, latency=(len(depth) + 1) * window)

    def windows(self, t_max: int) -> list[int]:
        if self.options.windows is not None:
            return sorted({int(w) for w in self.options.windows if w <= t_max}) or [t_max]
        powers = [2**k for k in range(1, t_max.bit_length())]
        return powers or [t_max]


def _codes_and_batchnorm(model: nn.Module) -> list[nn.Parameter]:
    """Freeze everything but the AEC codes and the BatchNorm affine parameters; return those."""
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = []
    for module in model.modules():
        if isinstance(module, (AECActivation, AECEncoder)) or isinstance(module, nn.modules.batchnorm._BatchNorm):
            for p in module.parameters():
                p.requires_grad_(True)
                trainable.append(p)
    return trainable
