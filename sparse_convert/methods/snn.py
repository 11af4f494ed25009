"""The converted network: an ANN graph whose activations are SpikingJelly multi-step nodes.

``SpikingNetwork`` takes ``[T, B, ...]`` and returns ``[T, B, classes]``. Inside, the ANN's
own ``forward`` runs once on the time-folded batch ``[T·B, ...]`` (so torchvision's and
timm's forward code, reshapes included, runs unchanged) and each node, wrapped in a
``TimeFold``, sees the ``[T, B, ...]`` sequence it needs. Nodes keep their state between
calls until ``functional.reset_net``: feeding the steps in chunks gives the same result as
one call with all of them.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn


class TimeFold(nn.Module):
    """Run a multi-step node on a time-folded batch: ``[T·B, ...] → node([T, B, ...]) → [T·B, ...]``."""

    def __init__(self, node: nn.Module):
        super().__init__()
        node.step_mode = "m"
        self.node = node
        self.steps = 1

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % self.steps:
            raise ValueError(f"batch of {x.shape[0]} is not a multiple of steps={self.steps}")
        return self.node(x.unflatten(0, (self.steps, -1))).flatten(0, 1)


class DirectEncoder:
    """Direct input encoding: the analog image is fed at every step (its first layer does MACs)."""

    emits_spikes = False

    def __call__(self, x: Tensor, t0: int, steps: int) -> Tensor:
        """Steps ``t0 .. t0+steps-1`` of the input sequence, ``[steps, B, ...]`` (contiguous)."""
        return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


class SpikingNetwork(nn.Module):
    """A converted SNN: ``body`` (the ANN graph with ``TimeFold`` nodes) plus its input ``encoder``."""

    def __init__(self, body: nn.Module, encoder: DirectEncoder | None = None):
        super().__init__()
        self.body = body
        self.encoder = encoder or DirectEncoder()
        functional.invalidate_reset_cache(self)

    def folds(self) -> list[TimeFold]:
        return [m for m in self.body.modules() if isinstance(m, TimeFold)]

    def forward(self, x_seq: Tensor) -> Tensor:
        steps = x_seq.shape[0]
        for fold in self.folds():
            fold.steps = steps
        return self.body(x_seq.flatten(0, 1)).unflatten(0, (steps, -1))

    @torch.no_grad()
    def rate_output(self, x: Tensor, steps: int) -> Tensor:
        """Mean output over ``steps`` steps for a static input ``x`` ``[B, ...]``, after a reset."""
        functional.reset_net(self)
        out = self(self.encoder(x, 0, steps)).mean(0)
        functional.reset_net(self)
        return out
