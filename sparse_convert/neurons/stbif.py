"""SpikeZIP-TF (You et al., ICML 2024): the LSQ quantizer of its QANN and the ST-BIF+ node it converts to.

ANN side, ``L`` levels, a learnable step ``s > 0`` and integer bounds ``[n, p]``
(signed: ``[−⌈L/2⌉, ⌊L/2⌋ − 1]``, as the reference's ``-L//2`` and ``L//2 - 1``, so that an
odd L also has L levels, e.g. ``[−3, 1]`` for L = 5; unsigned: ``[0, L − 1]``, which makes
it a quantized ReLU):

    y = s · clamp(floor(x / s + 1/2), n, p)          (floor passes gradients straight through)

``s`` learns with LSQ's gradient scale ``1 / sqrt(p · numel)`` and starts at LSQ's
``2 · mean|x| / sqrt(p)`` over the batches it calibrates on; both divide by ``p``, so the
quantizer needs a positive level (signed L = 2 or 3 have none and are refused). It is stored as ``log s``:
it stays positive, and Adam's updates change it by a fraction of itself (steps after a
softmax or an output projection are ~1e-3, smaller than one Adam update of ``s`` itself).

SNN side, the ST-BIF+ node with threshold ``θ = s``; per neuron a residual ``q`` (in units
of θ, ``0.5`` at start: the "+1/2" of the rounding) and the count ``a`` of net spikes:

    q ← q + x[t] / θ
    s = +1 if q ≥ 1 and a < p;   s = −1 if q < 0 and a > n;   else 0
    q ← q − s;   a ← a + s;   output θ · s

Spikes are ternary and the net count stays in ``[n, p]``. Once the summed input ``X``
stops changing the node settles with ``0 ≤ q < 1`` or at a bound, i.e. with
``a = clamp(floor(X / θ + 1/2), n, p)``: its summed output is exactly the quantizer's.
"""

from __future__ import annotations

import math

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn

from .base import ConversionNode, State
from .cupy_backend import KernelCall, KernelSpec
from .qcfs import floor_ste

_KERNEL = KernelSpec(
    name="stbif",
    states=("q", "count"),
    params=(("theta", "scalar"), ("pos_max", "scalar"), ("neg_min", "scalar")),
    step="""
q = ROUND(q + ROUND(x / theta));
float s = 0.0f;
if (q >= 1.0f && count < pos_max) s = 1.0f;
else if (q < 0.0f && count > neg_min) s = -1.0f;
count = ROUND(count + s);
q = ROUND(q - s);
o = s * theta;
""",
)


def level_bounds(levels: int, signed: bool) -> tuple[int, int]:
    """Integer range ``(n, p)`` of an ``L``-level quantizer, L values in all: ``(−⌈L/2⌉, ⌊L/2⌋ − 1)`` signed,
    ``(0, L − 1)`` unsigned."""
    if isinstance(levels, bool) or int(levels) != levels or levels < 2:
        raise ValueError(f"levels (L) must be an integer >= 2, got {levels!r}")
    levels = int(levels)
    return (-((levels + 1) // 2), levels // 2 - 1) if signed else (0, levels - 1)


def _scale_grad(x: Tensor, factor: float) -> Tensor:
    """``x`` in the forward pass, its gradient multiplied by ``factor`` in the backward pass."""
    scaled = x * factor
    return (x - scaled).detach() + scaled


class LSQQuantizer(nn.Module):
    """SpikeZIP-TF's quantizer: learnable step ``s``, ``levels`` levels, signed or unsigned (a quantized ReLU)."""

    def __init__(self, levels: int, signed: bool, step: float = 1.0):
        super().__init__()
        self.levels = int(levels)
        self.signed = bool(signed)
        self.neg_min, self.pos_max = level_bounds(levels, signed)
        if self.pos_max < 1:
            raise ValueError(f"a signed LSQ quantizer needs levels (L) >= 4, got {levels}: its range "
                             f"[{self.neg_min}, {self.pos_max}] has no positive level, and LSQ's step "
                             f"2·mean|x|/sqrt(p) and gradient scale 1/sqrt(p·N) divide by p = 0")
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"quantizer step s must be a finite number > 0, got {step}")
        self.log_step = nn.Parameter(torch.tensor(math.log(step)))
        self._seen: list[float] | None = None  # (Σ|x|, count) of the inputs since calibration began

    @property
    def calibrating(self) -> bool:
        """Whether the forward pass sets ``s`` from its inputs (see ``start_calibration``)."""
        return self._seen is not None

    def start_calibration(self) -> None:
        """From now on each forward pass sets ``s`` from all inputs seen since this call."""
        self._seen = [0.0, 0]

    def stop_calibration(self) -> None:
        self._seen = None

    @property
    def step(self) -> Tensor:
        """The step ``s = exp(log_step)`` (the ST-BIF+ threshold after conversion)."""
        return self.log_step.exp()

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> None:
        """Set ``s`` to LSQ's initial value ``2 · mean|x| / sqrt(p)``; while calibrating, the mean runs
        over every input seen since ``start_calibration`` (so several batches all count)."""
        total, count = float(x.detach().abs().sum()), x.numel()
        if self._seen is not None:
            self._seen[0] += total
            self._seen[1] += count
            total, count = self._seen
        value = 2.0 * total / max(count, 1) / math.sqrt(self.pos_max)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"cannot calibrate a quantizer on an input with mean |x| = {value}")
        self.log_step.fill_(math.log(value))

    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            self.calibrate(x)
        scale = 1.0 / math.sqrt(self.pos_max * max(x.numel(), 1))
        step = _scale_grad(self.log_step, scale).exp().to(x.dtype)
        return floor_ste(x / step + 0.5).clamp(self.neg_min, self.pos_max) * step

    def extra_repr(self) -> str:
        return f"levels={self.levels}, signed={self.signed}, range=[{self.neg_min}, {self.pos_max}]"


class STBIFNode(ConversionNode):
    """ST-BIF+ node: ternary spikes ``±θ``, net spike count bounded in ``[neg_min, pos_max]``.

    With gradients it backpropagates through time with ``surrogate_function``'s gradient
    (SpikingJelly's own ``STBIFNode`` is inference only).

    Reuses SpikingJelly 2.0's ST-BIF transition: the single step is its
    ``functional.stbif_step`` (the equations of the module docstring, same arithmetic as
    its ``STBIFNode``); this class gives it a ``ConversionNode`` (``v`` is the residual
    ``q``, ``count`` the net spike count), so ``set_backend``, the monitors and the energy
    counters see it like our other nodes. The multi-step torch backend is an in-place loop
    of the same arithmetic (SpikingJelly's ``stbif_multi_step`` falls back to its torch
    reference without Triton and allocates at every step: 1.5x slower on a CPU; a test
    checks both agree bit for bit).
    """

    def __init__(self, threshold: float | Tensor, neg_min: int, pos_max: int, *, step_mode: str = "m",
                 backend: str = "torch", surrogate_function: object | None = None, detach_reset: bool = False,
                 store_v_seq: bool = False):
        super().__init__(step_mode=step_mode, backend=backend, surrogate_function=surrogate_function,
                         detach_reset=detach_reset, store_v_seq=store_v_seq)
        theta = torch.as_tensor(threshold).detach().clone().reshape(())
        theta = theta if theta.is_floating_point() else theta.float()
        if not (torch.isfinite(theta) and theta > 0):
            raise ValueError(f"ST-BIF threshold must be a finite number > 0, got {float(theta)}")
        if not neg_min <= 0 <= pos_max or neg_min == pos_max:
            raise ValueError(f"need neg_min <= 0 <= pos_max and neg_min < pos_max, got neg_min={neg_min}, "
                             f"pos_max={pos_max}")
        self.register_buffer("threshold", theta)
        self.register_buffer("neg_min", torch.tensor(float(neg_min)))
        self.register_buffer("pos_max", torch.tensor(float(pos_max)))
        self.register_memory("count", 0.0)

    @classmethod
    def from_quantizer(cls, quantizer: LSQQuantizer, **kwargs: object) -> STBIFNode:
        """The node that replaces a trained ``LSQQuantizer``: ``θ = s``, the same integer range."""
        return cls(quantizer.step.detach(), quantizer.neg_min, quantizer.pos_max, **kwargs)

    @property
    def accumulated(self) -> Tensor:
        """Summed output so far, ``count · θ`` (the quantizer's output once the node has settled)."""
        if not isinstance(self.count, Tensor):
            raise RuntimeError("STBIFNode has no state before its first forward pass")
        return self.count * self.threshold.to(self.count.dtype)

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        q, count = states
        if not isinstance(q, Tensor) or q.shape != x.shape:
            q = torch.full_like(x, 0.5)
            count = torch.zeros_like(x)
        return q, count

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
        return tuple(p.to(x.device, dtype) for p in (self.threshold, self.pos_max, self.neg_min))

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """State ``(q, count)``: SpikingJelly's ``stbif_step``; with gradients or half inputs, the same
        arithmetic written out (``_explicit_step``)."""
        q, count = state
        if self.needs_grad(x, q) or x.dtype in (torch.float16, torch.bfloat16):
            return self._explicit_step(x, q, count)
        out, q, count, _ = functional.stbif_step(x, q, count, *self._params(x))
        return out, (q, count)

    def _explicit_step(self, x: Tensor, q: Tensor, count: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``stbif_step``'s arithmetic, the spike through ``surrogate_function`` (same values, a gradient) and
        every value kept in ``x``'s dtype (``stbif_step`` turns a half state into float32)."""
        theta, pos_max, neg_min = self._params(x)
        q = q + (x / theta).to(x.dtype)
        pos = self.spike(q - 1.0) * (count < pos_max).to(q.dtype)
        neg = self.spike(-q) * ((q != 0) & (count > neg_min)).to(q.dtype)  # q < 0, strictly
        spike = pos - neg
        return (spike * theta).to(x.dtype), (q - self.for_reset(spike), count + spike.detach())

    def torch_multi_step(self, inputs, states):
        if self.needs_grad(inputs[0], states[0]):
            return self.loop_multi_step(inputs, states)
        x_seq = inputs[0]
        theta, pos_max, neg_min = self._params(x_seq)
        q, count = (s.clone() for s in states)
        out = torch.empty_like(x_seq)
        step = torch.empty_like(q)
        pos = torch.empty(q.shape, dtype=torch.bool, device=q.device)
        neg = torch.empty_like(pos)
        for t in range(x_seq.shape[0]):
            q.add_(torch.div(x_seq[t], theta, out=step))
            torch.ge(q, 1.0, out=pos).logical_and_(count < pos_max)
            torch.lt(q, 0.0, out=neg).logical_and_(count > neg_min)
            spike = out[t]
            torch.sub(pos.to(q.dtype), neg.to(q.dtype), out=spike)
            count.add_(spike)
            q.sub_(spike)
            spike.mul_(theta)
        return (out,), (q, count)

    def kernel_spec(self) -> KernelSpec:
        return _KERNEL

    def kernel_call(self, x_seq: Tensor, states) -> KernelCall:
        theta, pos_max, neg_min = self._params(x_seq)  # θ stays float32 under float16 input, as in torch
        return KernelCall(states={"q": states[0], "count": states[1]},
                          params={"theta": theta, "pos_max": pos_max, "neg_min": neg_min})

    def extra_repr(self) -> str:
        return (f"threshold={float(self.threshold):.4g}, range=[{int(self.neg_min)}, {int(self.pos_max)}], "
                + super().extra_repr())
