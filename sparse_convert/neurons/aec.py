"""AEC, at-most-two-spike exponential coding (Chen et al., Neural Networks 2024).

A value ``a`` is sent within a window of ``T`` steps (local times 0..T−1) as at most two
spikes. The primary spike fires at the first step ``τ1`` where ``a`` reaches the decaying
threshold ``θ·exp(t_d − k·τ1)`` and carries that threshold's value; after reset by
subtraction, the compensating spike fires at the first later step ``τ2 > τ1`` where the
residual reaches ``θ₂·exp(t_d₂ − k₂·τ2)``. The receiver decodes the sum of the values.

``aec_code`` is that encode-decode in closed form (ceil passes gradients straight through,
so the six parameters of each layer train); ``AECActivation`` applies it in the ANN;
``AECNode`` runs it as real per-step events; ``AECEncoder`` codes the (signed) input image.

Deliberate departures from the reference code (``RPDS2020/AEC``, ``En_Decoding2``), each
a quirk that makes the output depend on things it should not:
* values equal to the batch-wide minimum are not zeroed;
* a missing compensating spike is not forced to fire at the window's end;
* the compensating spike comes strictly after the primary one (at most one spike per
  neuron per step, so events and firing rates count spikes exactly);
* local times are 0..T−1 (the reference allows 0..T, one more step).

Pipelining: a node of depth ``d`` integrates its input during windows 0..d−1 (its
decoding phase) and fires during window ``d``; the network's output is complete after
``(depth + 1)·T`` steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .base import ConversionNode
from .cupy_backend import KernelCall, KernelSpec
from .qcfs import floor_ste

PARAM_NAMES = ("theta", "t_d", "k", "theta2", "t_d2", "k2")


@dataclass(frozen=True)
class AECInit:
    """Initial values of a layer's six AEC parameters."""

    theta: float
    t_d: float
    k: float
    theta2: float
    t_d2: float
    k2: float

    def scaled(self, factor: float) -> AECInit:
        """The same code with both thresholds multiplied by ``factor`` (covers a wider range)."""
        return AECInit(self.theta * factor, self.t_d, self.k, self.theta2 * factor, self.t_d2, self.k2)

    def max_value(self) -> float:
        """Largest value the code can send: both spikes at local time 0."""
        import math

        return self.theta * math.exp(self.t_d) + self.theta2 * math.exp(self.t_d2)


#: The reference's initial values (``AEC_code/models/utils.py``).
INITS = {
    "cifar10": AECInit(theta=2.0, t_d=-0.9, k=0.9, theta2=1.0, t_d2=-0.8, k2=1.0),
    "cifar100": AECInit(theta=4.5, t_d=-1.05, k=0.95, theta2=2.0, t_d2=-0.5, k2=1.0),
}


def _first_time(value: Tensor, theta: Tensor, t_d: Tensor, k: Tensor, earliest: Tensor | float) -> Tensor:
    """Smallest integer t >= earliest with θ·exp(t_d − k·t) <= value (value > 0), straight-through."""
    ratio = torch.clamp(value / theta, min=1e-30)
    t = -floor_ste((torch.log(ratio) - t_d) / k)  # ceil, with a straight-through gradient
    return torch.maximum(t, torch.as_tensor(earliest, dtype=t.dtype, device=t.device))


def aec_code(a: Tensor, params: dict[str, Tensor], window: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Closed-form AEC of ``a``: (τ1, value1, τ2, value2); a spike that does not fire has value 0.

    τ of a spike that does not fire is ``window`` (outside the window).
    """
    theta, t_d, k = params["theta"], params["t_d"], params["k"]
    theta2, t_d2, k2 = params["theta2"], params["t_d2"], params["k2"]
    t1 = _first_time(a, theta, t_d, k, 0.0)
    fire1 = (a > 0) & (t1.detach() <= window - 1)
    u1 = torch.where(fire1, theta * torch.exp(t_d - k * t1), torch.zeros_like(a))
    residual = a - u1
    t2 = _first_time(residual, theta2, t_d2, k2, t1 + 1)
    fire2 = fire1 & (residual > 0) & (t2.detach() <= window - 1)
    u2 = torch.where(fire2, theta2 * torch.exp(t_d2 - k2 * t2), torch.zeros_like(a))
    never = torch.full_like(t1, float(window))
    return torch.where(fire1, t1, never), u1, torch.where(fire2, t2, never), u2


class AECParams(nn.Module):
    """The six learnable scalars of one layer's code."""

    def __init__(self, init: AECInit):
        super().__init__()
        for name, value in asdict(init).items():
            self.register_parameter(name, nn.Parameter(torch.tensor(float(value))))

    def as_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def check(self) -> None:
        """Thresholds and decay rates must stay positive for the code to be defined."""
        for name in ("theta", "k", "theta2", "k2"):
            value = float(getattr(self, name).detach())
            if not value > 0:
                raise ValueError(f"AEC parameter {name} must be > 0, got {value}")


class AECActivation(nn.Module):
    """ANN side: ``a ↦ value1 + value2`` of the AEC of ``a`` in a window of ``window`` steps."""

    def __init__(self, init: AECInit, window: int):
        super().__init__()
        if window < 1:
            raise ValueError(f"AEC window must be >= 1, got {window}")
        self.window = int(window)
        self.code = AECParams(init)

    def forward(self, a: Tensor) -> Tensor:
        _, u1, _, u2 = aec_code(a, self.code.as_dict(), self.window)
        return u1 + u2

    def extra_repr(self) -> str:
        return f"window={self.window}"


def _thresholds(params: dict[str, Tensor], window: int, dtype: torch.dtype, device: torch.device) -> tuple:
    """Primary and compensating threshold at every local time 0..window−1."""
    t = torch.arange(window, dtype=torch.float64, device=device)
    p = {k: v.detach().to(torch.float64) for k, v in params.items()}
    thr1 = p["theta"] * torch.exp(p["t_d"] - p["k"] * t)
    thr2 = p["theta2"] * torch.exp(p["t_d2"] - p["k2"] * t)
    return thr1.to(dtype), thr2.to(dtype)


_KERNEL = KernelSpec(
    name="aec",
    states=("v", "fired1", "fired2"),
    params=(("thr1", "time"), ("thr2", "time")),
    int_args=("start", "window", "step0"),
    step="""
const int local = step0 + t - start;
if (local < 0) {
    v = ROUND(v + x);
} else if (local < window) {
    const int f1 = fired1 == 0.0f && v >= thr1[local] && v > 0.0f;
    const int f2 = fired1 != 0.0f && fired2 == 0.0f && v >= thr2[local];
    if (f1) { o = thr1[local]; fired1 = 1.0f; }
    if (f2) { o = thr2[local]; fired2 = 1.0f; }
    v = ROUND(v - o);
}
""",
)


class AECNode(ConversionNode):
    """SNN side: integrate during windows 0..depth−1, fire at most two spikes in window ``depth``.

    Multi-step state: membrane ``v``, flags ``fired1`` / ``fired2`` and the global ``step``.
    Inference only; the parameters are trained in ``AECActivation`` form.
    """

    def __init__(self, params: dict[str, Tensor], window: int, depth: int, *, step_mode: str = "m",
                 backend: str = "torch"):
        super().__init__(step_mode=step_mode, backend=backend)
        if window < 1 or depth < 1:
            raise ValueError(f"AEC node needs window >= 1 and depth >= 1, got {window}, {depth}")
        self.window, self.depth = int(window), int(depth)
        for name in PARAM_NAMES:
            self.register_buffer(name, params[name].detach().clone().reshape(()))
        self.register_memory("fired1", 0.0)
        self.register_memory("fired2", 0.0)
        self.register_memory("step", 0)

    @classmethod
    def from_activation(cls, act: AECActivation, window: int, depth: int, **kwargs: object) -> AECNode:
        return cls(act.code.as_dict(), window, depth, **kwargs)

    def params(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in PARAM_NAMES}

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v, fired1, fired2, step = states
        if not isinstance(v, Tensor) or v.shape != x.shape:
            v = torch.zeros_like(x)
            fired1 = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
            fired2 = torch.zeros_like(fired1)
        return v, fired1, fired2, int(step)

    def single_step_functional_forward(self, inputs, states, **kwargs):
        x = inputs[0]
        v, fired1, fired2, step = states
        local = step - self.depth * self.window
        if local < 0:  # decoding phase: integrate
            return (torch.zeros_like(x),), (v + x, fired1, fired2, step + 1)
        if local >= self.window:  # after the encoding window: silent
            return (torch.zeros_like(x),), (v, fired1, fired2, step + 1)
        thr1, thr2 = _thresholds(self.params(), self.window, x.dtype, x.device)
        fire1 = ~fired1 & (v >= thr1[local]) & (v > 0)
        fire2 = fired1 & ~fired2 & (v >= thr2[local])  # fired1 is from earlier steps only
        out = fire1.to(x.dtype) * thr1[local] + fire2.to(x.dtype) * thr2[local]
        return (out,), (v - out, fired1 | fire1, fired2 | fire2, step + 1)

    def torch_multi_step(self, inputs, states):
        x_seq = inputs[0]
        v, fired1, fired2, step = states
        if self.needs_grad(x_seq, v):
            return super().torch_multi_step(inputs, states)
        thr1, thr2 = _thresholds(self.params(), self.window, x_seq.dtype, x_seq.device)
        v, fired1, fired2 = v.clone(), fired1.clone(), fired2.clone()
        out = torch.zeros_like(x_seq)
        start = self.depth * self.window
        for t in range(x_seq.shape[0]):
            local = step + t - start
            if local < 0:
                v.add_(x_seq[t])
            elif local < self.window:
                fire1 = ~fired1 & (v >= thr1[local]) & (v > 0)
                fire2 = fired1 & ~fired2 & (v >= thr2[local])
                out[t].addcmul_(fire1.to(v.dtype), thr1[local])  # tensors, not floats: no device sync
                out[t].addcmul_(fire2.to(v.dtype), thr2[local])
                v.sub_(out[t])
                fired1 |= fire1
                fired2 |= fire2
        return (out,), (v, fired1, fired2, step + x_seq.shape[0])

    def kernel_spec(self) -> KernelSpec:
        return _KERNEL

    def kernel_call(self, x_seq: Tensor, states) -> KernelCall:
        v, fired1, fired2, step = states
        thr1, thr2 = _thresholds(self.params(), self.window, x_seq.dtype, x_seq.device)
        return KernelCall(states={"v": v, "fired1": fired1.float(), "fired2": fired2.float()},
                          params={"thr1": thr1, "thr2": thr2},
                          ints={"start": self.depth * self.window, "window": self.window, "step0": int(step)})

    def kernel_states(self, new, old, x_seq):
        return new["v"].to(x_seq.dtype), new["fired1"] > 0.5, new["fired2"] > 0.5, int(old[3]) + x_seq.shape[0]

    def extra_repr(self) -> str:
        return f"window={self.window}, depth={self.depth}, " + super().extra_repr()


class AECEncoder(nn.Module):
    """Codes the (signed) input image with AEC during window 0: ``sign(x)·code(|x|)`` as spikes.

    Normalised images have negative pixels, which the code cannot send, so the magnitude
    is coded and the spike carries the pixel's sign. Stateless: step ``s`` of the input
    sequence is computed directly from ``x``. Every first-layer event is then an AC.
    """

    emits_spikes = True

    def __init__(self, init: AECInit, window: int):
        super().__init__()
        self.window = int(window)
        self.code = AECParams(init)

    def quantize(self, x: Tensor) -> Tensor:
        """The value the first layer decodes: the ANN-side (differentiable) form of the encoder."""
        _, u1, _, u2 = aec_code(x.abs(), self.code.as_dict(), self.window)
        return torch.sign(x) * (u1 + u2)

    @torch.no_grad()
    def encode(self, x: Tensor, t0: int, steps: int) -> Tensor:
        """Steps ``t0 .. t0+steps-1`` of the input spike sequence, ``[steps, B, ...]``."""
        t1, u1, t2, u2 = aec_code(x.abs(), self.code.as_dict(), self.window)
        sign = torch.sign(x)
        t = torch.arange(t0, t0 + steps, device=x.device, dtype=t1.dtype).view(-1, *([1] * x.dim()))
        out = (t == t1).to(x.dtype) * u1 + (t == t2).to(x.dtype) * u2
        return (out * sign).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        return self.quantize(x)
