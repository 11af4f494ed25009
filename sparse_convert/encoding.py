"""Input encoders: how an image becomes the input sequence of a multi-step SNN.

An encoder (``Encoder``) has ``encode(x, t0, steps) -> [steps, B, ...]`` (steps
``t0 .. t0+steps-1``, so a simulation can run in chunks) and says with ``emits_spikes``
whether the first synaptic layer receives spikes (ACs) or analog values (MACs). The energy
counter and the conversion methods both use them, so they live here, beside neither.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Encoder(Protocol):
    """What the energy counter and ``SpikingNetwork`` ask of an input encoder.

    ``emits_spikes``: whether the first synaptic layer receives spikes (its events are ACs);
    ``encode(x, t0, steps)``: steps ``t0 .. t0+steps-1`` of the input sequence of the batch
    ``x`` ``[B, ...]``, as ``[steps, B, ...]``. ``isinstance(obj, Encoder)`` checks that both exist.
    """

    emits_spikes: bool

    def encode(self, x: Tensor, t0: int, steps: int) -> Tensor:
        """Steps ``t0 .. t0+steps-1`` of the input sequence, ``[steps, B, ...]``."""
        ...


class DirectEncoder(Encoder):
    """Direct input encoding: the analog image is fed at every step (its first layer does MACs)."""

    emits_spikes: bool = False

    def encode(self, x: Tensor, t0: int, steps: int) -> Tensor:
        """Steps ``t0 .. t0+steps-1`` of the input sequence, ``[steps, B, ...]`` (contiguous)."""
        return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


class FirstStepEncoder(Encoder):
    """Analog first-step encoding (SpikeZIP-TF's ``analog``): the image at step 0, zeros afterwards.

    The first synaptic layer receives analog values, so its events are MACs.
    """

    emits_spikes: bool = False

    def encode(self, x: Tensor, t0: int, steps: int) -> Tensor:
        """Steps ``t0 .. t0+steps-1`` of the input sequence, ``[steps, B, ...]``."""
        seq = x.new_zeros((steps, *x.shape))
        if t0 == 0:
            seq[0] = x
        return seq
