"""SpikingJelly monitors that reduce what they see to per-step counts as it happens.

Both subclass ``spikingjelly.activation_based.monitor.BaseMonitor`` (hooks, ``records``,
``enable``/``disable``, ``remove_hooks``, context manager) and never keep a ``[T, B, ...]``
tensor: each hook call records one small ``[steps]`` vector. Set ``steps`` to the number
of time steps in the next forward call (1 for single-step networks).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron
from spikingjelly.activation_based.monitor import BaseMonitor
from torch import Tensor, nn

from ..topology import SYNAPTIC_TYPES
from .events import FanoutCache, count_events, input_shape


class SynapticEventMonitor(BaseMonitor):
    """Exact synaptic events per time step at the input of every Linear / Conv2d layer."""

    def __init__(self, net: nn.Module, instance: type | tuple[type, ...] = SYNAPTIC_TYPES):
        super().__init__()
        self.steps = 1
        self._fanouts = FanoutCache()
        self._workspaces: dict[str, dict] = {}
        for name, module in self._monitor_modules(net, instance):
            self.hooks.append(module.register_forward_pre_hook(self._make_hook(name)))

    def _make_hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            if self.is_enable():
                x = args[0]
                fanout = self._fanouts.get(module, input_shape(module, x))
                workspace = self._workspaces.setdefault(name, {})
                self._record(name, count_events(x.detach(), fanout, self.steps, workspace))
        return hook

    def per_layer(self) -> dict[str, Tensor]:
        """Events per step since the last ``clear_recorded_data``, float64 ``[T]`` per layer."""
        return {name: torch.cat(self[name]) if self[name] else torch.zeros(0, dtype=torch.float64)
                for name in self.monitored_layers}


class SpikeCountMonitor(BaseMonitor):
    """Spikes per time step (outputs ≠ 0, so signed and scaled spikes count once) of every node."""

    def __init__(self, net: nn.Module, instance: type | tuple[type, ...] = neuron.BaseNode):
        super().__init__()
        self.steps = 1
        self.neurons_seen: dict[str, int] = {}
        for name, module in self._monitor_modules(net, instance):
            self.hooks.append(module.register_forward_hook(self._make_hook(name)))

    def _make_hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
            if self.is_enable():
                out = out[0] if isinstance(out, tuple) else out
                self.neurons_seen[name] = out.numel() // self.steps
                self._record(name, (out.detach() != 0).reshape(self.steps, -1).sum(1))
        return hook

    def per_layer(self) -> dict[str, Tensor]:
        """Spikes per step since the last ``clear_recorded_data``, int64 ``[T]`` per node."""
        return {name: torch.cat(self[name]) if self[name] else torch.zeros(0, dtype=torch.int64)
                for name in self.monitored_layers}
