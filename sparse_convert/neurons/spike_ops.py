"""Products of two activations (attention's ``QKᵀ`` and ``AV``) in the ANN and, spike-equivalently, in the SNN.

``MatMul`` is the ANN operator ``y = scale · (a @ b)``. ``SpikeMatMul`` is its SNN twin
(SpikeZIP-TF's spike-equivalent self-attention): with running sums ``A_t = Σ_{i≤t} a_i``
and ``B_t = Σ_{i≤t} b_i`` it emits at step t the increment

    y_t = scale · (A_{t−1} @ b_t + a_t @ B_t)

which equals the reference's ``A_t·b_t + a_t·B_t − a_t·b_t`` (``multi`` in SpikeZIP-TF,
``_matmul_delta`` in SpikingJelly) with one product fewer, so ``Σ_{t≤T} y_t = scale · A_T @ B_T``.
SpikingJelly's ``SNNMatrixOperator`` gives the same sums as differences of full
products of the running sums; ours computes the increment itself, and
``increment_operands`` hands the energy counters the two pairs of operands that meet.
Spike-equivalent softmax and LayerNorm are SpikingJelly's ``SpikeZIPSoftmax`` /
``SpikeZIPLayerNorm`` (``TDSoftmax`` / ``TDLayerNorm``), used as they are.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import base
from torch import Tensor, nn


class MatMul(nn.Module):
    """``scale · (a @ b)`` as a module, so that conversion can swap it for ``SpikeMatMul``."""

    def __init__(self, scale: float = 1.0):
        super().__init__()
        self.scale = float(scale)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.matmul(a, b) * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}"


def increment_operands(a_seq: Tensor, b_seq: Tensor, a_sum: Tensor, b_sum: Tensor) -> tuple[Tensor, Tensor]:
    """``(A_{t−1}, B_t)`` for every step of ``a_seq`` ``[T, ..., n, k]`` and ``b_seq`` ``[T, ..., k, m]``.

    ``a_sum`` and ``b_sum`` are the running sums before the first of these steps.
    """
    a_cum = a_seq.cumsum(0) + a_sum
    a_prev = torch.cat([a_sum.unsqueeze(0), a_cum[:-1]])
    return a_prev, b_seq.cumsum(0) + b_sum


class SpikeMatMul(base.MemoryModule):
    """Spike-equivalent ``scale · (a @ b)``: the increment ``A_{t−1} @ b_t + a_t @ B_t`` at every step.

    Multi-step: takes ``a_seq`` ``[T, ..., n, k]`` and ``b_seq`` ``[T, ..., k, m]``, returns
    ``[T, ..., n, m]``; the running sums carry over between calls until ``reset``. With
    ``keep_operands`` set (by an energy monitor), each call leaves the two pairs of operands
    it multiplied in ``operands``: ``(A_{t−1}, b, a, B_t)``.
    """

    def __init__(self, scale: float = 1.0, step_mode: str = "m"):
        super().__init__()
        self.scale = float(scale)
        self.register_memory("a_sum", None)
        self.register_memory("b_sum", None)
        self.step_mode = step_mode
        self.keep_operands = False
        self.operands: tuple[Tensor, Tensor, Tensor, Tensor] | None = None

    @classmethod
    def from_matmul(cls, op: MatMul) -> SpikeMatMul:
        return cls(op.scale)

    def materialize_states(self, inputs, states, step_mode):
        a, b = (x[0] for x in inputs) if step_mode == "m" else inputs
        a_sum, b_sum = states
        if not isinstance(a_sum, Tensor) or a_sum.shape != a.shape or b_sum.shape != b.shape:
            a_sum, b_sum = torch.zeros_like(a), torch.zeros_like(b)
        return a_sum, b_sum

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        a_seq, b_seq = inputs
        if a_seq.shape[0] != b_seq.shape[0]:
            raise ValueError(f"operands have {a_seq.shape[0]} and {b_seq.shape[0]} time steps")
        a_prev, b_cum = increment_operands(a_seq, b_seq, *states)
        if self.keep_operands:
            self.operands = (a_prev, b_seq, a_seq, b_cum)
        out = (torch.matmul(a_prev, b_seq) + torch.matmul(a_seq, b_cum)) * self.scale
        return (out,), (a_prev[-1] + a_seq[-1], b_cum[-1])

    def single_step_functional_forward(self, inputs, states, **kwargs):
        (out,), states = self.multi_step_functional_forward(tuple(x.unsqueeze(0) for x in inputs), states)
        return (out[0],), states

    def extra_repr(self) -> str:
        return f"scale={self.scale:.6g}, step_mode={self.step_mode}"
