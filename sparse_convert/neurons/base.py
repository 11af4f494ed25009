"""What every sparse-convert node shares: SpikingJelly 2.0 ``BaseNode`` plumbing and the backend switch.

SpikingJelly 2.0 requires ``v_threshold`` to be a Python float, so our nodes keep their
real (channel-wise, learnable) thresholds in their own tensors and ``node.v_threshold``
reads those (a tensor), not the float ``BaseNode`` was given.

A node's dynamics are written once, as its pure ``transition(x, state) -> (output, new_state)``
(SpikingJelly's ``single_step_functional_forward`` calls it). A node may also have a fast
in-place torch loop (``torch_multi_step``) and a fused CuPy kernel (``kernel_spec``) for
the same equations. These are used only by the class that wrote them and by subclasses
that keep its transition: a subclass that overrides ``transition`` (or
``single_step_functional_forward``) runs the generic loop over its own transition on
torch, and on ``cupy`` needs a kernel of its own (otherwise a clear error). It never runs
its parent's equations.

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

#: A node's state: its memories in ``register_memory`` order (tensors, and ints such as a step counter).
State = tuple[object, ...]

#: The methods that define a node's equations; overriding one of them retires inherited fast paths.
DYNAMICS = ("transition", "single_step_functional_forward")


def _defined_in(cls: type, name: str) -> type:
    """The class of ``cls``'s MRO whose body defines ``name``."""
    return next(c for c in cls.__mro__ if name in vars(c))


def dynamics_owner(cls: type) -> type:
    """The most derived class of ``cls``'s MRO that writes the node's equations (see ``DYNAMICS``)."""
    return next(c for c in cls.__mro__ if any(name in vars(c) for name in DYNAMICS))


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

    Subclasses implement ``transition`` (the equations) and may add ``torch_multi_step``
    (a faster loop of the same equations) and ``kernel_spec`` / ``kernel_call`` (the CuPy
    kernel); see the module docstring for when those are used.
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

    # -- the equations -------------------------------------------------------------------

    def transition(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One time step: input ``x`` ``[B, ...]`` and the state before it → (output, state after it).

        Pure: it must change neither ``self`` nor ``state`` (the fast loops rely on that).
        """
        raise NotImplementedError(f"{type(self).__name__} must define transition(x, state)")

    def single_step_functional_forward(self, inputs: tuple[Tensor, ...], states: tuple[object, ...],
                                       **kwargs: object) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        out, state = self.transition(inputs[0], tuple(states))
        return (out,), state

    # -- which loop runs them ------------------------------------------------------------

    @classmethod
    def runs_own_fast_path(cls, name: str) -> bool:
        """Whether the fast path ``name`` (``"torch_multi_step"``, ``"kernel_spec"``, ``"cupy_multi_step"``)
        that ``cls`` would use was written for ``cls``'s equations: by the class that writes them or below it.

        The generic versions in ``ConversionNode`` are always valid (they loop the transition).
        """
        where = _defined_in(cls, name)
        return where is ConversionNode or issubclass(where, dynamics_owner(cls))

    @classmethod
    def check_kernel(cls) -> None:
        """Raise ``NotImplementedError`` unless ``cls`` has a CuPy kernel of its own equations."""
        if _defined_in(cls, "kernel_spec") is ConversionNode:
            raise NotImplementedError(f"{cls.__name__} has no CuPy kernel; use backend='torch'")
        for name in ("kernel_spec", "cupy_multi_step"):
            if not cls.runs_own_fast_path(name):
                parent = _defined_in(cls, name).__name__
                raise NotImplementedError(
                    f"{cls.__name__} overrides the equations of {parent} ({dynamics_owner(cls).__name__}"
                    f".transition) but would run {parent}'s CuPy kernel, which computes {parent}'s; give "
                    f"{cls.__name__} its own kernel_spec (and kernel_call) or use backend='torch'")

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        if name == "cupy":
            self.check_kernel()
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
        return self.torch_path(inputs, states)

    def torch_path(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                   ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """The torch backend: this class's fast loop if it computes this class's equations, else the generic
        loop."""
        if type(self).runs_own_fast_path("torch_multi_step"):
            return self.torch_multi_step(inputs, states)
        return self.loop_multi_step(inputs, states)

    def loop_multi_step(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                        ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """The generic loop: ``transition`` (through ``single_step_functional_forward``) over the time dimension."""
        return super().multi_step_functional_forward(inputs, states)

    def torch_multi_step(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                         ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """A faster loop of this class's equations; by default the generic loop."""
        return self.loop_multi_step(inputs, states)

    def cupy_multi_step(self, inputs: tuple[Tensor, ...], states: tuple[object, ...]
                        ) -> tuple[tuple[Tensor, ...], tuple[object, ...]]:
        """One fused kernel over all T steps (forward only: with gradients, the torch backend runs)."""
        from .cupy_backend import launch

        type(self).check_kernel()
        x_seq = inputs[0]
        if self.needs_grad(x_seq, *(s for s in states if isinstance(s, Tensor)), *self.parameters()):
            return self.torch_path(inputs, states)
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
