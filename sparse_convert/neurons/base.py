"""What every sparse-convert node shares: SpikingJelly 2.0 ``BaseNode`` plumbing and the backend switch.

SpikingJelly 2.0 requires ``v_threshold`` to be a Python float, so our nodes keep their
real (channel-wise, learnable) thresholds in their own tensors and ``node.v_threshold``
reads those (a tensor), not the float ``BaseNode`` was given. The dynamics of a node are
its pure ``single_step_functional_forward``; the multi-step loop runs either the torch
backend (a loop over T, in place when no gradient is needed) or, on CUDA, a fused CuPy
kernel over all T steps.

SpikingJelly's usual node keywords: ``step_mode``, ``surrogate_function`` (the spike
function: Heaviside forward, its surrogate gradient backward), ``detach_reset`` (no
gradient through the reset) and ``store_v_seq`` (``node.v_seq``, ``[T, B, ...]``) work as in
``BaseNode`` where a node takes them; ``v_threshold`` and ``v_reset`` are not taken (the
thresholds come from the trained ANN, and every node resets by subtraction).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import Tensor

from .cupy_backend import KernelCall, KernelSpec

BACKENDS = ("torch", "cupy")


def channel_view(values: Tensor, ndim: int, channel_dim: int = 1) -> Tensor:
    """Reshape a ``[C]`` tensor so it broadcasts against a tensor of ``ndim`` dims along ``channel_dim`` (< 0 counts
    from the end)."""
    shape = [1] * ndim
    if values.numel() == 1:
        return values.reshape(shape)
    if -ndim <= channel_dim < 0:
        channel_dim += ndim
    if not 0 <= channel_dim < ndim:
        raise ValueError(f"{values.numel()} channel values need an input with a dim {channel_dim}, got {ndim} dims")
    shape[channel_dim] = values.numel()
    return values.reshape(shape)


def inverse_softplus(y: Tensor) -> Tensor:
    """The ``x`` with ``softplus(x) == y`` (y > 0), stable for large ``y``."""
    y = torch.as_tensor(y, dtype=torch.float32)
    if not bool((y > 0).all()):
        raise ValueError(f"softplus thresholds must be > 0, got min {float(y.min())}")
    return y + torch.log(-torch.expm1(-y))


class ConversionNode(neuron.BaseNode):
    """Base of sparse-convert's SpikingJelly nodes: multi-step by default, ``backend`` in ``BACKENDS``.

    Subclasses implement ``single_step_functional_forward`` (the equations) and may
    override ``torch_multi_step`` (a faster loop) and ``cupy_multi_step`` (the kernel).
    """

    def __init__(self, *, step_mode: str = "m", backend: str = "torch", surrogate_function: object | None = None,
                 detach_reset: bool = False, store_v_seq: bool = False):
        self._threshold_ready = False
        super().__init__(v_threshold=1.0, v_reset=None,
                         surrogate_function=surrogate.Sigmoid() if surrogate_function is None else surrogate_function,
                         detach_reset=detach_reset, step_mode=step_mode, store_v_seq=store_v_seq)
        self._threshold_ready = True
        self.backend = backend

    @property
    def v_threshold(self) -> Tensor:
        """The node's real threshold (``real_threshold()``), not the float ``BaseNode`` was given."""
        return self.real_threshold()

    @v_threshold.setter
    def v_threshold(self, value: float) -> None:
        if getattr(self, "_threshold_ready", True):
            raise AttributeError(f"{type(self).__name__}.v_threshold reads its threshold tensor; "
                                 f"change the threshold itself instead")

    def real_threshold(self) -> Tensor:
        """The threshold the node fires at: its ``threshold`` (per layer, channel or neuron)."""
        return self.threshold

    def spike(self, h: Tensor) -> Tensor:
        """Heaviside ``h ≥ 0`` forward; with gradients, the surrogate's gradient backward."""
        if torch.is_grad_enabled() and h.requires_grad:
            return self.surrogate_function(h)
        return (h >= 0).to(h.dtype)

    def for_reset(self, spike: Tensor) -> Tensor:
        """``spike`` as the reset sees it: detached under ``detach_reset``."""
        return spike.detach() if self.detach_reset else spike

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        if name == "cupy":
            from .cupy_backend import require_cupy

            require_cupy(type(self).__name__)
        self._backend = name

    def multi_step_functional_forward(self, inputs: tuple[Tensor, ...], states: tuple[object, ...],
                                      **kwargs: object) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        if self._backend == "cupy":
            if not inputs[0].is_cuda:
                raise RuntimeError(f"{type(self).__name__}: the cupy backend needs CUDA tensors, "
                                   f"got a tensor on {inputs[0].device}; use backend='torch'")
            return self.cupy_multi_step(inputs, states)
        return self.torch_multi_step(inputs, states)

    def torch_multi_step(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                         ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """Loop ``single_step_functional_forward`` over the time dimension."""
        return super().multi_step_functional_forward(inputs, states)

    def cupy_multi_step(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                        ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """One fused kernel over all T steps (forward only: with gradients, the torch backend runs)."""
        from .cupy_backend import launch

        x_seq = inputs[0]
        if self.needs_grad(x_seq, *(s for s in states if isinstance(s, Tensor)), *self.parameters()):
            return self.torch_multi_step(inputs, states)
        out, new_states = launch(self.kernel_spec(), x_seq, self.kernel_call(x_seq, states))
        return (out,), self.kernel_states(new_states, states, x_seq)

    def kernel_spec(self) -> KernelSpec:
        """This node's dynamics for the CuPy backend (see ``cupy_backend.KernelSpec``)."""
        raise NotImplementedError(f"{type(self).__name__} has no CuPy kernel")

    def kernel_call(self, x_seq: Tensor, states: tuple[object, ...]) -> KernelCall:
        """States and parameters of one kernel launch, parameters already in ``x_seq``'s dtype."""
        raise NotImplementedError(f"{type(self).__name__} has no CuPy kernel")

    def kernel_states(self, new: dict[str, Tensor], old: tuple[object, ...], x_seq: Tensor) -> tuple[object, ...]:
        """The kernel's float32 state registers back in this node's state format (default: input dtype)."""
        return tuple(new[name].to(x_seq.dtype) for name in self.kernel_spec().states)

    @staticmethod
    def needs_grad(*tensors: Tensor) -> bool:
        """Whether autograd must see this computation (then in-place fast paths are off)."""
        return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode}, backend={self._backend}"
