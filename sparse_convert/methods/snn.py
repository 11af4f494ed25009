"""The converted network: an ANN graph whose activations are SpikingJelly multi-step nodes.

``SpikingNetwork`` takes ``[T, B, ...]`` and returns ``[T, B, classes]``. Inside, the ANN's
own ``forward`` runs once on the time-folded batch ``[T·B, ...]`` (so torchvision's and
timm's forward code, reshapes included, runs unchanged) and each node, wrapped in a
``TimeFold``, sees the ``[T, B, ...]`` sequence it needs. Nodes keep their state between
calls until ``functional.reset_net``: feeding the steps in chunks gives the same result as
one call with all of them. ``functional.set_step_mode(snn, "s")`` makes it a single-step
network (``[B, ...] → [B, classes]``, one step per call, the same outputs step by step).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base, functional
from torch import Tensor, nn

from ..encoding import DirectEncoder, Encoder


class TimeFold(nn.Module):
    """Run a multi-step node on a time-folded batch: ``[T·B, ...] → node([T, B, ...]) → [T·B, ...]``.

    A node of several inputs (a product of two activations) gets each of them unfolded.
    """

    def __init__(self, node: nn.Module):
        super().__init__()
        node.step_mode = "m"
        self.node = node
        self.steps = 1

    def forward(self, *xs: Tensor) -> Tensor:
        if getattr(self.node, "step_mode", "m") == "s":  # single-step network: the batch is one step
            if self.steps != 1:
                raise ValueError(f"{type(self.node).__name__} is in single-step mode but this call folds "
                                 f"{self.steps} steps; set the step mode of the whole network")
            return self.node(*xs)
        for x in xs:
            if x.shape[0] % self.steps:
                raise ValueError(f"batch of {x.shape[0]} is not a multiple of steps={self.steps}")
        return self.node(*(x.unflatten(0, (self.steps, -1)) for x in xs)).flatten(0, 1)


class SpikingNetwork(nn.Module, base.StepModule):
    """A converted SNN: ``body`` (the ANN graph with ``TimeFold`` nodes) plus its input ``encoder``.

    Step mode ``'m'`` (default): ``[T, B, ...] → [T, B, classes]``, the body on the folded
    batch ``[T·B, ...]`` (``folds_time``). Step mode ``'s'`` (``functional.set_step_mode``,
    which sets every node too): ``[B, ...] → [B, classes]``, one step per call.
    ``latency`` is the number of steps after which the output is complete, for networks
    that send each value once through a pipeline (AEC); ``None`` when every step refines it.
    """

    #: The body runs on ``[T·B, ...]``: stateless layers see every step of a call at once.
    folds_time = True

    def __init__(self, body: nn.Module, encoder: Encoder | None = None, latency: int | None = None):
        super().__init__()
        self.step_mode = "m"
        self.body = body
        self.encoder = encoder or DirectEncoder()
        self.latency = latency
        functional.invalidate_reset_cache(self)

    def folds(self) -> list[TimeFold]:
        return [m for m in self.body.modules() if isinstance(m, TimeFold)]

    def forward(self, x_seq: Tensor) -> Tensor:
        single = self.step_mode == "s"
        steps = 1 if single else x_seq.shape[0]
        folds = self.folds()
        modes = {getattr(f.node, "step_mode", "m") for f in folds}
        if modes - {self.step_mode}:
            raise ValueError(f"SpikingNetwork is in step mode {self.step_mode!r} but has nodes in {sorted(modes)}: "
                             f"use functional.set_step_mode(snn, mode) to switch the whole network")
        for fold in folds:
            fold.steps = steps
        if single:
            return self.body(x_seq)
        return self.body(x_seq.flatten(0, 1)).unflatten(0, (steps, -1))

    @torch.no_grad()
    def rate_output(self, x: Tensor, steps: int) -> Tensor:
        """Mean output over ``steps`` steps for a static input ``x`` ``[B, ...]``, after a reset."""
        functional.reset_net(self)
        x_seq = self.encoder.encode(x, 0, steps)
        out = (functional.multi_step_forward(x_seq, self) if self.step_mode == "s" else self(x_seq)).mean(0)
        functional.reset_net(self)
        return out
