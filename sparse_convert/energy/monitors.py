"""SpikingJelly monitors that reduce what they see to per-step counts as it happens.

All subclass ``StepCountMonitor``, a ``spikingjelly.activation_based.monitor.BaseMonitor``
(hooks, ``records``, ``enable``/``disable``, ``remove_hooks``, context manager), and never keep a
``[T, B, ...]`` tensor: each hook call records one small ``[steps]`` vector, ``steps`` being the number of
time steps that call really carried (``steps.StepTracker``: from the input's shape and the
network's step modes), so a network stepped one call per time step, run in chunks or run
whole records the same counts. Where the steps of a call cannot be known the hook raises.
``monitor.steps`` may state the steps of each call of the whole network: it is then
checked against each call (and used only where the network cannot tell). An element that
carries two spikes in one step (AEC, see ``double_spikes``) counts as two spikes and as two
events per nonzero weight it reaches.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from spikingjelly.activation_based.ann2snn.operators import TDLayerNorm, TDSoftmax
from spikingjelly.activation_based.monitor import BaseMonitor
from torch import Tensor, nn

from .double_spikes import DoubleSpikes
from .events import COUNTED_TYPES, FanoutCache, count_events, input_shape, is_counted, product_pairs
from .roles import NODE_TYPES, PRODUCT_TYPES, is_spike_source
from .steps import StepTracker

#: Spike-equivalent nonlinear operators whose work is reported apart from the energy, by kind.
OPERATION_KINDS: dict[type[nn.Module], str] = {TDSoftmax: "softmax", TDLayerNorm: "layernorm"}

#: Layers that carry synapses but have no event rule: counting a network that calls one is an error.
UNCOUNTED_SYNAPTIC_TYPES: tuple[type[nn.Module], ...] = (
    nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Bilinear, nn.MultiheadAttention,
    nn.LazyLinear, nn.RNNBase, nn.RNNCellBase,
)


def uncounted_synaptic_layers(net: nn.Module) -> dict[str, nn.Module]:
    """Modules of ``net`` that hold synaptic weights the event counter has no rule for, by name.

    These are the ``UNCOUNTED_SYNAPTIC_TYPES`` and any other module with a weight matrix
    of its own (a ``weight`` of two or more dims) that is neither a counted layer nor an
    embedding (a lookup, no synaptic operation).
    """
    found = {}
    for name, m in net.named_modules():
        if is_counted(m) and not isinstance(m, UNCOUNTED_SYNAPTIC_TYPES):
            continue
        weight = m._parameters.get("weight")
        own_matrix = isinstance(weight, Tensor) and weight.dim() >= 2 and not isinstance(m, nn.Embedding)
        if isinstance(m, UNCOUNTED_SYNAPTIC_TYPES) or own_matrix:
            found[name] = m
    return found


class StepCountMonitor(BaseMonitor):
    """A monitor that records one ``[steps]`` count vector per call of each monitored module.

    The base holds the hook: it skips calls while disabled, finds the steps the call carries
    (``call_steps``: ``StepTracker`` on ``net``), asks ``count`` for the vector and records it;
    ``per_layer`` concatenates the records of each module into its ``[T]`` curve. To write a
    new counter, subclass it, call ``self._watch(net, types)`` in ``__init__`` and override
    ``count(name, module, x, steps)``, which turns one call's (detached) input, or output with
    ``reads = "output"``, into a ``[steps]`` vector.
    """

    #: Which tensor of a call ``count`` sees: ``"input"`` (its first argument) or ``"output"``.
    reads: str = "input"
    #: The dtype of ``per_layer``'s curve of a module that recorded nothing.
    empty_dtype: torch.dtype = torch.float64

    def __init__(self, net: nn.Module, *, tracker: StepTracker | None = None):
        """``tracker``: a ``StepTracker(net)`` shared by several monitors of one run (its owner removes its
        hooks); by default the monitor has its own."""
        super().__init__()
        self._tracker = StepTracker(net) if tracker is None else tracker
        if tracker is None:
            self.hooks += self._tracker.handles

    @property
    def steps(self) -> int | None:
        """Steps of each call of the monitored network as stated by the caller; ``None`` (default): follow it."""
        return self._tracker.expected

    @steps.setter
    def steps(self, value: int | None) -> None:
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"steps must be an integer >= 1 or None, got {value}")
        self._tracker.expected = None if value is None else int(value)

    def count(self, name: str, module: nn.Module, x: Tensor, steps: int | None) -> Tensor | None:
        """The counts of one call of ``module`` (named ``name``) on ``x``, ``[steps]``; ``None`` records nothing."""
        raise NotImplementedError(f"{type(self).__name__} does not say what it counts")

    def call_steps(self, name: str, module: nn.Module, x: Tensor) -> int | None:
        """The time steps one call of ``module`` on ``x`` carries (an error where they cannot be known)."""
        return self._tracker.steps_of(module, x, name)

    def _watch(self, net: nn.Module, types: type | tuple[type, ...],
               keep: Callable[[nn.Module], bool] | None = None) -> list[tuple[str, nn.Module]]:
        """Hook every module of ``net`` that is one of ``types`` (and passes ``keep``); returns them, named."""
        watched = [(name, m) for name, m in net.named_modules() if isinstance(m, types) and (keep is None or keep(m))]
        for name, module in watched:
            self.monitored_layers.append(name)
            self.name_records_index[name] = []
            if self.reads == "input":
                self.hooks.append(module.register_forward_pre_hook(self._input_hook(name)))
            else:
                self.hooks.append(module.register_forward_hook(self._output_hook(name)))
        return watched

    def _input_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if self.is_enable():
                self._count_call(name, module, args[0])
        return hook

    def _output_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: Tensor | tuple) -> None:
            if self.is_enable():
                self._count_call(name, module, out[0] if isinstance(out, tuple) else out)
        return hook

    def _count_call(self, name: str, module: nn.Module, x: Tensor) -> None:
        x = x.detach()
        counts = self.count(name, module, x, self.call_steps(name, module, x))
        if counts is not None:
            self._record(name, counts)

    def per_layer(self) -> dict[str, Tensor]:
        """Counts per step since the last ``clear_recorded_data``, a ``[T]`` curve per monitored module."""
        return {name: torch.cat(self[name]) if self[name] else torch.zeros(0, dtype=self.empty_dtype)
                for name in self.monitored_layers}


class SynapticEventMonitor(StepCountMonitor):
    """Exact synaptic events per time step at the input of every Linear / Conv1d / Conv2d / Conv3d layer.

    Float64 ``[T]`` per layer. A layer that holds synapses without an event rule
    (``uncounted_synaptic_layers``, e.g. ``ConvTranspose2d``) raises when the network calls it
    (``strict=True``), or warns once naming it and records nothing for it (``strict=False``):
    never a silent zero.
    """

    def __init__(self, net: nn.Module, instance: type | tuple[type, ...] = tuple(COUNTED_TYPES),
                 strict: bool = True, *, tracker: StepTracker | None = None):
        super().__init__(net, tracker=tracker)
        self._fanouts = FanoutCache()
        self._workspaces: dict[str, dict] = {}
        self._watch(net, instance)
        self.uncounted = uncounted_synaptic_layers(net)
        for name, module in self.uncounted.items():
            self.hooks.append(module.register_forward_pre_hook(self._refuse(name, strict)))
        self._doubles = DoubleSpikes(net)
        self.hooks += self._doubles.handles

    def count(self, name: str, module: nn.Module, x: Tensor, steps: int) -> Tensor:
        fanout = self._fanouts.get(module, input_shape(module, x))
        workspace = self._workspaces.setdefault(name, {})
        events = count_events(x, fanout, steps, workspace)
        doubles = self._doubles.mask_for(x)
        if doubles is not None:  # the second spike of each such element reaches the same weights
            events = events + count_events(doubles, fanout, steps, workspace)
        return events

    def _refuse(self, name: str, strict: bool):
        warned = []

        def hook(module: nn.Module, args: tuple) -> None:
            if not self.is_enable():
                return
            message = (f"{name} ({type(module).__name__}) holds synapses but has no synaptic-event rule "
                       f"(counted: {', '.join(t.__name__ for t in COUNTED_TYPES)}); its events are not counted")
            if strict:
                raise TypeError(message + "; pass strict=False to count the rest of the network with a warning")
            if not warned:
                warned.append(True)
                warnings.warn(message, stacklevel=2)
        return hook


class SpikeCountMonitor(StepCountMonitor):
    """Spikes per time step (outputs ≠ 0, so signed and scaled spikes count once; twice where a node
    reports two spikes in one element) of every spiking node (``roles.NODE_TYPES``; pass ``instance`` to
    count spike encoders too), int64 ``[T]`` per node."""

    reads = "output"
    empty_dtype = torch.int64

    def __init__(self, net: nn.Module, instance: type | tuple[type, ...] = NODE_TYPES, *,
                 tracker: StepTracker | None = None):
        super().__init__(net, tracker=tracker)
        self.neurons_seen: dict[str, int] = {}
        self._watch(net, instance, keep=lambda m: is_spike_source(m, instance))  # not analog-output nodes (LIAF)
        self._doubles = DoubleSpikes(net, follow=False)
        self.hooks += self._doubles.handles

    def count(self, name: str, module: nn.Module, out: Tensor, steps: int) -> Tensor:
        per_step = out.numel() // steps
        self.neurons_seen[name] = per_step
        # int32 sums are ~2x faster than int64's on a CPU; they hold any count below 2^31
        dtype = torch.int32 if per_step < 2**31 else torch.int64
        spikes = (out != 0).reshape(steps, -1).sum(1, dtype=dtype).to(torch.int64)
        doubles = self._doubles.mask_for(out)
        if doubles is not None:
            spikes += doubles.reshape(steps, -1).sum(1, dtype=dtype).to(torch.int64)
        return spikes


class ProductEventMonitor(StepCountMonitor):
    """Pairs of nonzero entries that meet per time step in every activation-activation product, float64 ``[T]``.

    A ``SpikeMatMul`` adds ``A_{t−1} @ b_t + a_t @ B_t`` at step t (``A``, ``B`` the running
    sums of its operands ``a``, ``b``); its events are the pairs of nonzeros that meet in
    those two products (``product_pairs``). The monitor asks each product to keep the
    operands it multiplied (``keep_operands``) and counts them after the call, so the
    running sums are not computed twice; ``remove_hooks`` turns that off again.
    """

    reads = "output"

    def __init__(self, net: nn.Module, instance: type | tuple[type, ...] = PRODUCT_TYPES, *,
                 tracker: StepTracker | None = None):
        super().__init__(net, tracker=tracker)
        self._modules = [module for _, module in self._watch(net, instance)]
        for module in self._modules:
            module.keep_operands = True

    def call_steps(self, name: str, module: nn.Module, x: Tensor) -> None:
        return None  # the kept operands carry the steps

    def count(self, name: str, module: nn.Module, out: Tensor, steps: None) -> Tensor | None:
        operands, module.operands = module.operands, None
        if operands is None:
            return None
        a_prev, b_seq, a_seq, b_cum = (x.detach() for x in operands)
        return product_pairs(a_prev, b_seq) + product_pairs(a_seq, b_cum)

    def remove_hooks(self) -> None:
        super().remove_hooks()
        for module in self._modules:
            module.keep_operands, module.operands = False, None


class OperationCountMonitor(StepCountMonitor):
    """Element operations per time step of spike-equivalent softmax and LayerNorm, by kind (``OPERATION_KINDS``).

    At each step such an operator re-evaluates ``f`` on the rows (softmax rows, LayerNorm
    groups) whose input increment is nonzero; each element of such a row counts one
    operation. These counts are reported beside the energy, not in it.
    """

    def __init__(self, net: nn.Module, kinds: dict[type[nn.Module], str] | None = None, *,
                 tracker: StepTracker | None = None):
        super().__init__(net, tracker=tracker)
        self.kinds = dict(OPERATION_KINDS if kinds is None else kinds)
        self.kind_of: dict[str, str] = {}
        for name, module in self._watch(net, tuple(self.kinds)):
            self.kind_of[name] = next(k for t, k in self.kinds.items() if isinstance(module, t))

    def call_steps(self, name: str, module: nn.Module, x: Tensor) -> int:
        return 1 if module.step_mode == "s" else x.shape[0]

    def count(self, name: str, module: nn.Module, x: Tensor, steps: int) -> Tensor:
        if module.step_mode == "s":
            x = x.unsqueeze(0)
        group = _group_dims(module, x.dim())
        rows = (x != 0).any(dim=group)
        size = math.prod(x.shape[d] for d in group)
        return rows.reshape(steps, -1).sum(1, dtype=torch.float64) * size

    def per_kind(self) -> dict[str, Tensor]:
        """Operations per step since the last ``clear_recorded_data``, float64 ``[T]`` per kind."""
        totals: dict[str, Tensor] = {}
        for name in self.monitored_layers:
            if self[name]:
                steps = torch.cat(self[name])
                kind = self.kind_of[name]
                totals[kind] = steps if kind not in totals else totals[kind] + steps
        return totals


def _group_dims(module: nn.Module, ndim: int) -> tuple[int, ...]:
    """The dims of a ``[T, ...]`` input that one evaluation of ``module`` normalises together."""
    shape = getattr(module, "normalized_shape", None)
    if shape is not None:
        return tuple(range(ndim - len(shape), ndim))
    dim = getattr(module, "dim", -1)
    return (dim % ndim,)
