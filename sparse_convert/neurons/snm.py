"""SNM, the signed neuron with memory (Wang et al., IJCAI 2022), and the ANN clip it pairs with.

Per neuron, with threshold θ > 0 (one per neuron of the layer's output, from neuron-wise
normalisation), membrane ``v`` (``v_init · θ`` at start: 0 in the reference; 0.5 is the
QCFS shift, which makes the rate round instead of floor) and net spike count ``m`` (the memory):

    v ← v + x[t]
    s = +1 if v ≥ θ;   s = −1 if v ≤ −θ and m > 0;   else 0
    v ← v − θ·s;   m ← m + s;   output θ·s

A negative spike is refused while the neuron's net output so far is not positive, so the
firing rate never goes negative. A neuron whose θ is 0 (never active on the training set)
stays silent. The node's rate output approaches ``clamp(x, 0, θ)``, the ``NeuronClip``
activation of the ANN.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import ConversionNode, State
from .cupy_backend import KernelCall, KernelSpec

_KERNEL = KernelSpec(
    name="snm",
    states=("v", "count"),
    params=(("theta", "neuron"),),
    step="""
v = ROUND(v + x);
float s = 0.0f;
if (theta > 0.0f) {
    if (v >= theta) s = 1.0f;
    else if (v <= -theta && count > 0.0f) s = -1.0f;
}
count = ROUND(count + s);
o = s * theta;
v = ROUND(v - o);
""",
)


class NeuronClip(nn.Module):
    """ReLU clipped at a per-neuron threshold ``θ`` (shape of one sample's activation): the ANN side of SNM."""

    def __init__(self, threshold: Tensor):
        super().__init__()
        self.register_buffer("threshold", torch.as_tensor(threshold).clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.minimum(torch.relu(x), self.threshold.to(x.dtype))

    def extra_repr(self) -> str:
        return f"neurons={tuple(self.threshold.shape)}"


class SNMNode(ConversionNode):
    """Signed neuron with memory; ``threshold`` has the shape of one sample (one θ per neuron).

    With gradients it backpropagates through time with ``surrogate_function``'s gradient
    (the memory's condition ``m > 0`` passes none).
    """

    def __init__(self, threshold: Tensor, *, v_init: float = 0.0, step_mode: str = "m", backend: str = "torch",
                 surrogate_function: object | None = None, detach_reset: bool = False, store_v_seq: bool = False):
        super().__init__(step_mode=step_mode, backend=backend, surrogate_function=surrogate_function,
                         detach_reset=detach_reset, store_v_seq=store_v_seq)
        if not 0.0 <= v_init < 1.0:
            raise ValueError(f"v_init is a fraction of the threshold in [0, 1), got {v_init}")
        self.v_init = float(v_init)
        threshold = torch.as_tensor(threshold)
        if not threshold.is_floating_point():
            threshold = threshold.float()
        if bool((threshold < 0).any()) or bool(torch.isnan(threshold).any()):
            raise ValueError("SNM thresholds must be >= 0 and not NaN")
        self.register_buffer("threshold", threshold.clone())
        self.register_memory("count", 0.0)

    @classmethod
    def from_activation(cls, act: NeuronClip, **kwargs: object) -> SNMNode:
        return cls(act.threshold, **kwargs)

    def materialize_states(self, inputs, states, step_mode):
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v, count = states
        if not isinstance(v, Tensor) or v.shape != x.shape:
            v = torch.zeros_like(x)
            if self.v_init:
                v += self.v_init * self.threshold.to(x.dtype)
            count = torch.zeros_like(x)
        return v, count

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """State ``(v, count)``: the module docstring's equations, spikes through the surrogate."""
        v, count = state
        theta = self.threshold.to(x.dtype)
        v = v + x
        active = (theta > 0).to(x.dtype)
        pos = self.spike(v - theta) * active  # v ≥ θ
        neg = self.spike(-theta - v) * (count > 0).to(x.dtype) * active  # v ≤ −θ while the net count is positive
        spike = pos - neg
        out = spike * theta
        return out, (v - self.for_reset(out), count + spike.detach())

    def torch_multi_step(self, inputs, states):
        x_seq = inputs[0]
        v, count = states
        if self.needs_grad(x_seq, v):
            return self.loop_multi_step(inputs, states)
        theta = self.threshold.to(x_seq.dtype)
        reach = theta.masked_fill(theta <= 0, float("inf"))  # a silent neuron (θ = 0) never reaches it
        v, count = v.clone(), count.clone()
        out = torch.empty_like(x_seq)
        pos = torch.empty(v.shape, dtype=torch.bool, device=v.device)
        neg = torch.empty_like(pos)
        for t in range(x_seq.shape[0]):
            v.add_(x_seq[t])
            torch.ge(v, reach, out=pos)
            torch.le(v, -reach, out=neg)
            neg.logical_and_(count > 0)
            spike = out[t]
            torch.sub(pos.to(x_seq.dtype), neg.to(x_seq.dtype), out=spike)
            count.add_(spike)
            spike.mul_(theta)
            v.sub_(spike)
        return (out,), (v, count)

    def kernel_spec(self) -> KernelSpec:
        return _KERNEL

    def kernel_call(self, x_seq: Tensor, states) -> KernelCall:
        theta = self.threshold.to(x_seq.dtype).expand(x_seq.shape[2:]).contiguous()
        return KernelCall(states={"v": states[0], "count": states[1]}, params={"theta": theta})

    def extra_repr(self) -> str:
        return f"neurons={tuple(self.threshold.shape)}, v_init={self.v_init:g}, " + super().extra_repr()
