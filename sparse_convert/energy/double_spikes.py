"""Where one output element carries two spikes in one step (AEC), followed to the synaptic layers it reaches.

A node or encoder that can send both spikes of a neuron in one step outputs their sum
there and offers ``register_double_spike_hook(hook)``; ``hook(output, doubles)`` gets a
bool mask shaped like the output, true where the element carries two spikes. Such an
element is two spikes for the firing rate and two synaptic events per nonzero weight it
reaches. ``DoubleSpikes`` keeps each mask for as long as its output's storage lives, and
follows it through passive modules (``roles.PASSIVE_TYPES``: shape-only modules share the
storage; a pooled position carries two spikes when any of its inputs does), so that a
synaptic layer can ask ``mask_for(x)`` about its input.
"""

from __future__ import annotations

import weakref

from torch import Tensor, nn

from .roles import PASSIVE_TYPES


def double_spike_sources(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The named modules of ``net`` that report double spikes."""
    return [(name, m) for name, m in net.named_modules() if callable(getattr(m, "register_double_spike_hook", None))]


class DoubleSpikes:
    """Double-spike masks of the outputs of ``net``'s sources (and, with ``follow=True``, of passive modules)."""

    def __init__(self, net: nn.Module, follow: bool = True):
        self._masks: dict[int, tuple[weakref.ref, int, Tensor]] = {}  # storage pointer → (storage, offset, mask)
        self.handles = [m.register_double_spike_hook(self._record) for _, m in double_spike_sources(net)]
        if follow and self.handles:
            self.handles += [m.register_forward_hook(self._passive) for m in net.modules()
                             if isinstance(m, PASSIVE_TYPES)]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self._masks.clear()

    def _record(self, output: Tensor, doubles: Tensor) -> None:
        if doubles.shape != output.shape:
            raise ValueError(f"double-spike mask of shape {tuple(doubles.shape)} for an output of "
                             f"shape {tuple(output.shape)}")
        storage = output.untyped_storage()
        key = storage.data_ptr()
        ref = weakref.ref(storage)
        self._masks[key] = (ref, output.storage_offset(), doubles.detach())
        weakref.finalize(storage, self._forget, key, ref)

    def _forget(self, key: int, ref: weakref.ref) -> None:
        entry = self._masks.get(key)
        if entry is not None and entry[0] is ref:
            del self._masks[key]

    def mask_for(self, x: Tensor) -> Tensor | None:
        """The double-spike mask shaped like ``x``, or ``None`` when ``x`` carries none."""
        entry = self._masks.get(x.untyped_storage().data_ptr())
        if entry is None or entry[0]() is not x.untyped_storage():
            return None
        _, offset, mask = entry
        if x.storage_offset() != offset or x.numel() != mask.numel() or not x.is_contiguous():
            raise RuntimeError(f"cannot follow double spikes into a view of shape {tuple(x.shape)} of an "
                               f"output of shape {tuple(mask.shape)}")
        return mask.reshape(x.shape)

    def _passive(self, module: nn.Module, args: tuple, out: Tensor) -> None:
        if not args or not isinstance(args[0], Tensor) or not isinstance(out, Tensor):
            return
        mask = self.mask_for(args[0])
        if mask is None or out.untyped_storage().data_ptr() == args[0].untyped_storage().data_ptr():
            return
        self._record(out, module.forward(mask.to(args[0].dtype)) != 0)  # forward: no hooks on the mask
