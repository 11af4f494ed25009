"""AEC, at-most-two-spike exponential coding (Chen et al., Neural Networks 2024).

A value ``a`` is sent within a window of ``W`` steps (local times 0..W−1) as two spikes.
The primary spike fires at the first step ``τ1`` where ``a`` reaches the decaying
threshold ``θ·exp(t_d − k·τ1)`` and carries that threshold's value. After reset by
subtraction, the compensating spike fires at the first step ``τ2 ≥ τ1`` (the same step is
allowed) where the residual reaches ``θ₂·exp(t_d₂ − k₂·τ2)``, and at the window's last
step if it has not fired by then. A value that never reaches the primary threshold sends
nothing. The receiver decodes the sum of the values; the largest is ``θe^{t_d} + θ₂e^{t_d₂}``
(both spikes at step 0).

``aec_code`` is that encode-decode in closed form (ceil passes gradients straight through,
so the six parameters of each layer train); ``AECActivation`` applies it in the ANN;
``AECNode`` runs it as real per-step events; ``AECEncoder`` codes the (signed) input image.
A node or encoder step that carries both spikes of one neuron outputs their sum; it
reports where (``register_double_spike_hook``), so that the energy counters count two
spikes there.

This decodes what the reference's closed form (``En_Decoding2`` of ``RPDS2020/AEC``)
decodes with ``sim_length = W − 1``: its spike times run over 0..sim_length, which is
``W`` steps. Departures, see ``docs/aec.md``: values equal to the batch-wide minimum are
not zeroed (the reference relies on that to silence values that do not fire, and it also
zeroes the smallest real code when every value fires); spike times come from comparing
the value with the threshold, where the reference takes a logarithm of ``a/θ + 1e-20``,
which differs only at exact ties (the rounded logarithm can put the spike one step late)
and for values below ~``1e-19·θ``.

Pipelining: a node of depth ``d`` integrates its input during windows 0..d−1 (its
decoding phase) and fires during window ``d``; the network's output is complete after
``(depth + 1)·W`` steps.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..encoding import Encoder
from .base import ConversionNode, State
from .cupy_backend import KernelCall, KernelSpec
from .qcfs import floor_ste

PARAM_NAMES = ("theta", "t_d", "k", "theta2", "t_d2", "k2")

#: ``hook(output, doubles)``: ``doubles`` is a bool tensor shaped like ``output``, true where one
#: element carries both spikes of its neuron in one step.
DoubleSpikeHook = Callable[[Tensor, Tensor], None]


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
        """Largest value the stepped code sends in any window: the code of a saturating input."""
        params = {name: torch.tensor(value, dtype=torch.float64) for name, value in asdict(self).items()}
        huge = torch.tensor([torch.finfo(torch.float64).max], dtype=torch.float64)  # finite: ceil's straight-through
        _, u1, _, u2 = aec_code(huge, params, window=1)
        return float(u1 + u2)


#: The reference's initial values (``AEC_code/models/utils.py``).
INITS = {
    "cifar10": AECInit(theta=2.0, t_d=-0.9, k=0.9, theta2=1.0, t_d2=-0.8, k2=1.0),
    "cifar100": AECInit(theta=4.5, t_d=-1.05, k=0.95, theta2=2.0, t_d2=-0.5, k2=1.0),
}


def _first_time(value: Tensor, theta: Tensor, t_d: Tensor, k: Tensor) -> Tensor:
    """Smallest integer t >= 0 with θ·exp(t_d − k·t) <= value (huge when value <= 0), straight-through.

    The logarithm gives t up to its rounding; one comparison with the threshold itself then
    settles ties the way the stepped node's ``v >= threshold`` does.
    """
    ratio = torch.clamp(value / theta, min=torch.finfo(value.dtype).tiny)
    t = torch.relu(-floor_ste((torch.log(ratio) - t_d) / k))  # ceil, with a straight-through gradient
    with torch.no_grad():
        late = (t >= 1) & (theta * torch.exp(t_d - k * (t - 1)) <= value)
        early = theta * torch.exp(t_d - k * t) > value
        shift = early.to(t.dtype) - late.to(t.dtype)
    return t + shift


def aec_code(a: Tensor, params: dict[str, Tensor], window: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Closed-form AEC of ``a`` in a window of ``window`` steps: (τ1, value1, τ2, value2).

    Both spikes fire (``τ1 <= τ2 <= window − 1``) or neither does (values 0, times ``window``).
    """
    theta, t_d, k = params["theta"], params["t_d"], params["k"]
    theta2, t_d2, k2 = params["theta2"], params["t_d2"], params["k2"]
    t1 = _first_time(a, theta, t_d, k)
    fire = (a > 0) & (t1.detach() <= window - 1)
    u1 = torch.where(fire, theta * torch.exp(t_d - k * t1), torch.zeros_like(a))
    t2 = torch.clamp(torch.maximum(_first_time(a - u1, theta2, t_d2, k2), t1), max=window - 1)
    u2 = torch.where(fire, theta2 * torch.exp(t_d2 - k2 * t2), torch.zeros_like(a))
    never = torch.full_like(t1, float(window))
    return torch.where(fire, t1, never), u1, torch.where(fire, t2, never), u2


class _DoubleSpikeSource:
    """Mixin: ``register_double_spike_hook``, the way ``register_forward_hook`` works (a removable handle)."""

    _double_spike_hooks: OrderedDict[int, DoubleSpikeHook]  # weak-referenceable, for RemovableHandle

    def register_double_spike_hook(self, hook: DoubleSpikeHook) -> RemovableHandle:
        """Call ``hook(output, doubles)`` after each output is made (see ``DoubleSpikeHook``)."""
        handle = RemovableHandle(self._double_spike_hooks)
        self._double_spike_hooks[handle.id] = hook
        return handle

    def _report_doubles(self, output: Tensor, doubles: Tensor) -> None:
        for hook in list(self._double_spike_hooks.values()):
            hook(output, doubles)


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


#: ``both``: the step of the call at which one neuron sent both spikes (−1: none), for the double-spike report.
_KERNEL = KernelSpec(
    name="aec",
    states=("v", "fired1", "fired2", "both"),
    params=(("thr1", "time"), ("thr2", "time")),
    int_args=("start", "window", "step0"),
    step="""
const int local = step0 + t - start;
if (local < 0) {
    v = ROUND(v + x);
} else if (local < window) {
    int first = 0;
    if (fired1 == 0.0f && v >= thr1[local] && v > 0.0f) {
        o = thr1[local];
        v = ROUND(v - thr1[local]);
        fired1 = 1.0f;
        first = 1;
    }
    if (fired1 != 0.0f && fired2 == 0.0f && (v >= thr2[local] || local == window - 1)) {
        o = ROUND(o + thr2[local]);
        v = ROUND(v - thr2[local]);
        fired2 = 1.0f;
        if (first && thr1[local] != 0.0f && thr2[local] != 0.0f) both = (float) t;
    }
}
""",
)


class AECNode(_DoubleSpikeSource, ConversionNode):
    """SNN side: integrate during windows 0..depth−1, fire the two spikes in window ``depth``.

    At a step of the firing window: the primary spike fires if it has not and ``v`` reaches
    its threshold (``v`` drops by it); then the compensating spike fires if the primary has
    fired, it has not, and ``v`` reaches its threshold or the step is the window's last.
    The step's output is the sum of the spikes it carries. Multi-step state: membrane
    ``v``, flags ``fired1`` / ``fired2`` and the global ``step``. The parameters are
    trained in ``AECActivation`` form; with gradients the node backpropagates through time
    to its input with ``surrogate_function``'s gradient (the flags pass none).
    """

    def __init__(self, params: dict[str, Tensor], window: int, depth: int, *, step_mode: str = "m",
                 backend: str = "torch", surrogate_function: object | None = None, detach_reset: bool = False,
                 store_v_seq: bool = False):
        super().__init__(step_mode=step_mode, backend=backend, surrogate_function=surrogate_function,
                         detach_reset=detach_reset, store_v_seq=store_v_seq)
        if window < 1 or depth < 1:
            raise ValueError(f"AEC node needs window >= 1 and depth >= 1, got {window}, {depth}")
        self.window, self.depth = int(window), int(depth)
        for name in PARAM_NAMES:
            self.register_buffer(name, params[name].detach().clone().reshape(()))
        self.register_memory("fired1", 0.0)
        self.register_memory("fired2", 0.0)
        self.register_memory("step", 0)
        self._double_spike_hooks = OrderedDict()
        self._doubles: list[Tensor | None] | None = None  # per step of the current call, while hooks listen

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

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """State ``(v, fired1, fired2, step)``: integrate before the firing window, the two spikes in it."""
        v, fired1, fired2, step = state
        local = step - self.depth * self.window
        if not 0 <= local < self.window:  # decoding phase: integrate; after the window: silent
            return torch.zeros_like(x), (v + x if local < 0 else v, fired1, fired2, step + 1)
        thr1, thr2 = _thresholds(self.params(), self.window, x.dtype, x.device)
        # spikes through the surrogate (their values are the hard ones); the flags follow the hard spikes
        gate1 = ~fired1 & (v > 0)
        fire1 = gate1 & (v >= thr1[local])
        s1 = self.spike(v - thr1[local]) * gate1.to(x.dtype)
        v = v - self.for_reset(s1) * thr1[local]
        fired1 = fired1 | fire1
        gate2 = fired1 & ~fired2
        last = local == self.window - 1  # the compensating spike is due at the window's last step anyway
        fire2 = gate2 & ((v >= thr2[local]) | last)
        s2 = (torch.ones_like(v) if last else self.spike(v - thr2[local])) * gate2.to(x.dtype)
        v = v - self.for_reset(s2) * thr2[local]
        out = s1 * thr1[local] + s2 * thr2[local]
        return out, (v, fired1, fired2 | fire2, step + 1)

    def single_step_functional_forward(self, inputs, states, **kwargs):
        (out,), new = super().single_step_functional_forward(inputs, states)
        if self._doubles is not None:  # both spikes in this step: both flags rose in it
            local = int(states[3]) - self.depth * self.window
            if 0 <= local < self.window:
                thr1, thr2 = _thresholds(self.params(), self.window, out.dtype, out.device)
                self._note_doubles(new[1] & ~states[1], new[2] & ~states[2], thr1[local], thr2[local])
            else:
                self._note_doubles()
        return (out,), new

    def torch_multi_step(self, inputs, states):
        x_seq = inputs[0]
        v, fired1, fired2, step = states
        if self.needs_grad(x_seq, v):
            return self.loop_multi_step(inputs, states)
        thr1, thr2 = _thresholds(self.params(), self.window, x_seq.dtype, x_seq.device)
        v, fired1, fired2 = v.clone(), fired1.clone(), fired2.clone()
        out = torch.zeros_like(x_seq)
        start = self.depth * self.window
        for t in range(x_seq.shape[0]):
            local = step + t - start
            if not 0 <= local < self.window:
                if local < 0:
                    v.add_(x_seq[t])
                self._note_doubles()
                continue
            # thresholds stay tensors, not floats: no device sync
            fire1 = ~fired1 & (v >= thr1[local]) & (v > 0)
            v.addcmul_(fire1.to(v.dtype), thr1[local], value=-1)
            fired1 |= fire1
            fire2 = fired1 & ~fired2
            if local < self.window - 1:  # at the window's last step the compensating spike is due anyway
                fire2 &= v >= thr2[local]
            v.addcmul_(fire2.to(v.dtype), thr2[local], value=-1)
            fired2 |= fire2
            out[t].addcmul_(fire1.to(v.dtype), thr1[local])
            out[t].addcmul_(fire2.to(v.dtype), thr2[local])
            self._note_doubles(fire1, fire2, thr1[local], thr2[local])
        return (out,), (v, fired1, fired2, step + x_seq.shape[0])

    def cupy_multi_step(self, inputs, states):
        from .cupy_backend import launch

        type(self).check_kernel()
        x_seq = inputs[0]
        if self.needs_grad(x_seq, states[0]):
            return self.torch_path(inputs, states)
        out, new = launch(self.kernel_spec(), x_seq, self.kernel_call(x_seq, states))
        if self._doubles is not None:
            self._doubles.extend(self.kernel_doubles(new, x_seq).unbind(0))
        return (out,), self.kernel_states(new, states, x_seq)

    def _note_doubles(self, fire1: Tensor | None = None, fire2: Tensor | None = None, thr1: Tensor | None = None,
                      thr2: Tensor | None = None) -> None:
        """While hooks listen, keep one step's double-spike mask (no arguments: a step outside the window)."""
        if self._doubles is not None:
            self._doubles.append(None if fire1 is None else fire1 & fire2 & (thr1 != 0) & (thr2 != 0))

    def real_threshold(self) -> Tensor:
        """The primary spike's threshold at each step of the firing window, ``[window]``."""
        return _thresholds(self.params(), self.window, torch.float32, self.theta.device)[0]

    def _forward_reporting(self, forward: Callable[[Tensor], Tensor], x: Tensor, steps: bool) -> Tensor:
        if not self._double_spike_hooks:
            return forward(x)
        self._doubles = []
        try:
            out = forward(x)
            masks = self._doubles
        finally:
            self._doubles = None
        if any(m is not None for m in masks):
            shape = out.shape[1:] if steps else out.shape
            per_step = [torch.zeros(shape, dtype=torch.bool, device=out.device) if m is None else m for m in masks]
            self._report_doubles(out, torch.stack(per_step) if steps else per_step[0])
        return out

    def single_step_forward(self, x: Tensor) -> Tensor:
        return self._forward_reporting(super().single_step_forward, x, steps=False)

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        return self._forward_reporting(super().multi_step_forward, x_seq, steps=True)

    def kernel_spec(self) -> KernelSpec:
        return _KERNEL

    def kernel_call(self, x_seq: Tensor, states) -> KernelCall:
        v, fired1, fired2, step = states
        thr1, thr2 = _thresholds(self.params(), self.window, x_seq.dtype, x_seq.device)
        both = torch.full(v.shape, -1.0, device=v.device)
        return KernelCall(states={"v": v, "fired1": fired1.float(), "fired2": fired2.float(), "both": both},
                          params={"thr1": thr1, "thr2": thr2},
                          ints={"start": self.depth * self.window, "window": self.window, "step0": int(step)})

    def kernel_states(self, new, old, x_seq):
        return new["v"].to(x_seq.dtype), new["fired1"] > 0.5, new["fired2"] > 0.5, int(old[3]) + x_seq.shape[0]

    @staticmethod
    def kernel_doubles(new: dict[str, Tensor], x_seq: Tensor) -> Tensor:
        """The double-spike mask ``[T, B, ...]`` of one kernel call, from its ``both`` register."""
        steps = torch.arange(x_seq.shape[0], device=x_seq.device, dtype=torch.float32)
        return new["both"].unsqueeze(0) == steps.view(-1, *([1] * (x_seq.dim() - 1)))

    def extra_repr(self) -> str:
        return f"window={self.window}, depth={self.depth}, " + super().extra_repr()


class AECEncoder(_DoubleSpikeSource, nn.Module, Encoder):
    """Codes the (signed) input image with AEC during window 0: ``sign(x)·code(|x|)`` as spikes.

    Normalised images have negative pixels, which the code cannot send, so the magnitude
    is coded and the spike carries the pixel's sign. Stateless: step ``s`` of the input
    sequence is computed directly from ``x``. Every first-layer event is then an AC.
    """

    emits_spikes: bool = True

    def __init__(self, init: AECInit, window: int):
        super().__init__()
        self.window = int(window)
        self.code = AECParams(init)
        self._double_spike_hooks = OrderedDict()

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
        at1, at2 = (t == t1) & (u1 != 0), (t == t2) & (u2 != 0)
        out = ((at1.to(x.dtype) * u1 + at2.to(x.dtype) * u2) * sign).contiguous()
        if self._double_spike_hooks:
            self._report_doubles(out, at1 & at2 & (sign != 0))
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.quantize(x)
