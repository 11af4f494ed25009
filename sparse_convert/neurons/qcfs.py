"""CS-QCFS (Yang et al., Neural Networks 2025): the ANN activation and the IF node it converts to.

ANN side, with ``L`` quantization steps and threshold ``θ = softplus(raw)``:

    y = θ · clamp(floor(x · L / θ + 1/2) / L, 0, 1)          (floor passes gradients straight through)

``θ`` is one value per layer (S-QCFS) or one per channel (CS-QCFS, after
``expand_channels``). SNN side, an integrate-and-fire node with reset by subtraction:

    v[0] = θ/2;   v ← v + x[t];   s = H(v − θ);   v ← v − θ·s;   output θ·s

With a constant input ``x`` and ``T = L`` steps, the node's mean output equals the ANN
activation exactly; ``tests/test_qcfs.py`` checks this and the convergence for T ≠ L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ConversionNode, State, channel_view, inverse_softplus
from .cupy_backend import KernelCall, KernelSpec

_KERNEL = KernelSpec(
    name="csqcfs",
    states=("v",),
    params=(("theta", "channel"),),
    step="""
v = ROUND(v + x);
if (v >= theta) { o = theta; v = ROUND(v - theta); }
""",
)


def floor_ste(x: Tensor) -> Tensor:
    """``floor`` in the forward pass (exactly: no rounding error from the trick), identity in the backward pass."""
    return torch.floor(x).detach() + (x - x.detach())


class SQCFS(nn.Module):
    """Softplus quantization clip-floor-shift activation; layer-wise until ``expand_channels``."""

    def __init__(self, levels: int, threshold: float | Tensor = 8.0, channel_dim: int = 1):
        super().__init__()
        if int(levels) < 1:
            raise ValueError(f"levels (L) must be >= 1, got {levels}")
        self.levels = int(levels)
        self.channel_dim = channel_dim
        self.raw_threshold = nn.Parameter(inverse_softplus(torch.as_tensor(threshold).reshape(-1)))

    @property
    def threshold(self) -> Tensor:
        """θ = softplus(raw), shape ``[C]`` (``[1]`` while layer-wise)."""
        return F.softplus(self.raw_threshold)

    def expand_channels(self, num_channels: int) -> None:
        """Switch from S-QCFS to CS-QCFS: one threshold per channel, each starting at the layer's value."""
        if self.raw_threshold.numel() not in (1, num_channels):
            raise ValueError(f"cannot expand {self.raw_threshold.numel()} thresholds to {num_channels} channels")
        raw = self.raw_threshold.detach().reshape(-1).expand(num_channels).clone()
        self.raw_threshold = nn.Parameter(raw)

    def forward(self, x: Tensor) -> Tensor:
        theta = channel_view(self.threshold, x.ndim, self.channel_dim).to(x.dtype)
        q = floor_ste(x * self.levels / theta + 0.5) / self.levels
        return theta * q.clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, channels={self.raw_threshold.numel()}"


class CSQCFSNode(ConversionNode):
    """IF node with reset by subtraction, channel-wise θ = softplus(raw), v(0) = θ/2; emits θ·spike.

    Takes ``[T, B, C, ...]`` in multi-step mode (``[B, C, ...]`` single-step); the
    threshold broadcasts along ``channel_dim`` of the single-step shape. With gradients it
    backpropagates through time with ``surrogate_function``'s gradient.
    """

    def __init__(self, raw_threshold: Tensor, channel_dim: int = 1, *, step_mode: str = "m",
                 backend: str = "torch", surrogate_function: object | None = None, detach_reset: bool = False,
                 store_v_seq: bool = False):
        super().__init__(step_mode=step_mode, backend=backend, surrogate_function=surrogate_function,
                         detach_reset=detach_reset, store_v_seq=store_v_seq)
        self.channel_dim = channel_dim
        raw = torch.as_tensor(raw_threshold)
        raw = raw if raw.is_floating_point() else raw.float()
        self.raw_threshold = nn.Parameter(raw.detach().reshape(-1).clone(), requires_grad=False)

    @classmethod
    def from_activation(cls, act: SQCFS, **kwargs: object) -> CSQCFSNode:
        """The node that replaces a trained ``SQCFS`` activation (thresholds copied)."""
        return cls(act.raw_threshold.detach(), act.channel_dim, **kwargs)

    @property
    def threshold(self) -> Tensor:
        return F.softplus(self.raw_threshold)

    def _theta(self, x: Tensor) -> Tensor:
        return channel_view(self.threshold, x.ndim, self.channel_dim).to(x.dtype)

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v = states[0]
        if not isinstance(v, Tensor) or v.shape != x.shape:
            v = (0.5 * self._theta(x)).expand(x.shape).clone()
        return (v,)

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """State ``(v,)``: integrate, fire at θ, reset by subtraction; output θ·spike."""
        (v,) = state
        theta = self._theta(x)
        v = v + x
        out = self.spike(v - theta) * theta
        return out, (v - self.for_reset(out),)

    def torch_multi_step(self, inputs, states):
        x_seq, v = inputs[0], states[0]
        if self.needs_grad(x_seq, v, self.raw_threshold):
            return self.loop_multi_step(inputs, states)
        theta = self._theta(x_seq[0])
        v = v.clone()
        out = torch.empty_like(x_seq)
        fired = torch.empty(v.shape, dtype=torch.bool, device=v.device)
        for t in range(x_seq.shape[0]):
            v.add_(x_seq[t])
            torch.ge(v, theta, out=fired)
            torch.mul(fired, theta, out=out[t])
            v.sub_(out[t])
        return (out,), (v,)

    def kernel_spec(self) -> KernelSpec:
        return _KERNEL

    def kernel_call(self, x_seq: Tensor, states) -> KernelCall:
        theta = self.threshold.detach().to(x_seq.dtype)
        channels = theta.numel()
        inner = x_seq[0, 0, 0].numel() if channels > 1 else 1
        if channels > 1 and (self.channel_dim != 1 or x_seq.shape[2] != channels):
            raise ValueError(f"{channels} thresholds do not fit channel dim 1 of input {tuple(x_seq.shape)}")
        return KernelCall(states={"v": states[0]}, params={"theta": theta}, channels=channels, inner=inner)

    def extra_repr(self) -> str:
        return f"channels={self.raw_threshold.numel()}, " + super().extra_repr()
