"""Accuracy, MASFR, MAC/AC events and energy at every time step, from one run of ``t_max`` steps.

Index ``t-1`` of every curve is the value for a run of ``t`` steps: accuracy of the output
accumulated over steps ``1..t``; MASFR(t) = Σ_neurons Σ_{s≤t} |spike| / (t · N) (paper
Eq. 2, averaged over images); MACs, ACs and energy per image summed over steps ``1..t``.
``layer_masfr[name][t-1]`` is the same rate for one spiking layer (node) alone, Σ_{its neurons}
Σ_{s≤t} |spike| / (t · N_layer), so the neuron-weighted mean of the layers' curves is MASFR
at every t; layers are listed in module order (the forward order of sequential models).
MACs and ACs include the pairs of nonzeros that meet in activation-activation products
(attention), with the role of a synaptic layer. The element operations of spike-equivalent
softmax and LayerNorm are reported apart in ``other_ops`` and are not in the energy: the
paper's energy model (§2.2) prices MACs and ACs only.
The network runs in chunks of ``chunk`` steps with its state carried across chunks, so
memory does not grow with ``t_max``; only ``[t]`` vectors are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from spikingjelly.activation_based import functional
from spikingjelly.activation_based.monitor import BaseMonitor
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..encoding import DirectEncoder, Encoder
from ..training import make_loader
from .model import EnergyModel
from .monitors import (
    OperationCountMonitor,
    ProductEventMonitor,
    SpikeCountMonitor,
    StepCountMonitor,
    SynapticEventMonitor,
)
from .roles import MAC, trace_synapse_roles
from .steps import StepTracker, network_step_mode


@dataclass
class TimeCurves:
    """Per-step results; every list has one entry per t in ``t``."""

    t: list[int]
    accuracy: list[float]
    masfr: list[float]
    mac: list[float]
    ac: list[float]
    energy_uj: list[float]
    images: int
    neurons: int
    roles: dict[str, str] = field(default_factory=dict)
    layer_events: dict[str, float] = field(default_factory=dict)  # per image over all t_max steps
    other_ops: dict[str, list[float]] = field(default_factory=dict)  # per image, by kind; not in energy_uj
    layer_masfr: dict[str, list[float]] = field(default_factory=dict)  # per spiking layer, in module order
    layer_neurons: dict[str, int] = field(default_factory=dict)  # neurons per image of each spiking layer

    def per_step(self) -> dict[str, list]:
        """The ``per_step`` block of ``result.json``; ``other_ops`` kinds appear as ``<kind>_ops`` when present."""
        curves = {k: getattr(self, k) for k in ("t", "accuracy", "masfr", "mac", "ac", "energy_uj")}
        return {**curves, **{f"{kind}_ops": values for kind, values in self.other_ops.items()}}

    def at(self, t: int) -> dict[str, float]:
        """Every curve's value for a run of ``t`` steps."""
        if t not in self.t:
            raise ValueError(f"t={t} was not evaluated (have {self.t[0]}..{self.t[-1]})")
        i = self.t.index(t)
        return {k: v[i] for k, v in self.per_step().items()}

    def to_dict(self) -> dict:
        return asdict(self)

    def per_layer(self) -> dict[str, dict]:
        """The ``per_layer`` block of ``result.json``: each spiking layer's depth (1, 2, ... in module order),
        neurons and firing-rate curve ``masfr`` (index ``t-1`` for a run of ``t`` steps)."""
        return {name: {"depth": depth, "neurons": self.layer_neurons[name], "masfr": rates}
                for depth, (name, rates) in enumerate(self.layer_masfr.items(), start=1)}


def _encoder_of(net: nn.Module, encoder: Encoder | None) -> Encoder:
    """``encoder``, else ``net``'s own ``encoder``, else direct encoding; a TypeError for a non-``Encoder``."""
    source = "encoder"
    if encoder is None:
        encoder = getattr(net, "encoder", None)
        if encoder is None:
            return DirectEncoder()  # a plain SpikingJelly network: direct input
        source = f"{type(net).__name__}.encoder"
    if isinstance(encoder, type) or not isinstance(encoder, Encoder):
        got = f"the class {encoder.__name__}" if isinstance(encoder, type) else type(encoder).__name__
        raise TypeError(f"{source} must be an Encoder (emits_spikes and encode(x, t0, steps) -> [steps, B, ...]), "
                        f"got {got}")
    return encoder


class _Monitors(NamedTuple):
    """The four counters one ``evaluate_over_time`` run puts on the network, sharing one ``StepTracker``."""

    events: SynapticEventMonitor
    firing: SpikeCountMonitor
    products: ProductEventMonitor
    operations: OperationCountMonitor
    tracker: StepTracker

    @classmethod
    def on(cls, snn: nn.Module) -> _Monitors:
        tracker = StepTracker(snn)  # one walk of the network per call, not one per monitor
        return cls(SynapticEventMonitor(snn, tracker=tracker), SpikeCountMonitor(snn, tracker=tracker),
                   ProductEventMonitor(snn, tracker=tracker), OperationCountMonitor(snn, tracker=tracker), tracker)

    @property
    def counters(self) -> tuple[StepCountMonitor, ...]:
        return self.events, self.firing, self.products, self.operations

    def clear(self) -> None:
        for m in self.counters:
            m.clear_recorded_data()

    def remove(self) -> None:
        for m in self.counters:
            m.remove_hooks()
        self.tracker.remove()


@dataclass
class _Totals:
    """Per-step sums over the batches of one run of ``t_max`` steps, and the ``TimeCurves`` they make."""

    t_max: int
    correct: Tensor = field(init=False)
    spikes: Tensor = field(init=False)
    mac: Tensor = field(init=False)
    ac: Tensor = field(init=False)
    layer_totals: dict[str, float] = field(default_factory=dict)
    layer_spikes: dict[str, Tensor] = field(default_factory=dict)
    layer_neurons: dict[str, int] = field(default_factory=dict)
    other: dict[str, Tensor] = field(default_factory=dict)
    images: int = 0
    neurons: int = 0

    def __post_init__(self) -> None:
        self.correct, self.spikes, self.mac, self.ac = (torch.zeros(self.t_max, dtype=torch.float64)
                                                        for _ in range(4))

    def add_batch(self, correct: Tensor, monitors: _Monitors, roles: dict[str, str], batch: int) -> None:
        """Add one batch of ``batch`` images: ``correct`` per step ``[t_max]`` and what ``monitors`` recorded."""
        synaptic = {**monitors.events.per_layer(), **monitors.products.per_layer()}
        firing = monitors.firing.per_layer()
        for name, per_step in {**synaptic, **firing}.items():
            if len(per_step) not in (0, self.t_max):
                raise RuntimeError(f"{name} recorded {len(per_step)} time steps in a run of {self.t_max}: a module "
                                   f"called more than once per step cannot be counted per step")
        self.correct += correct
        for name, per_step in synaptic.items():
            role = roles.get(name)
            if role is None:  # layer not reached by the trace input; count it as analog
                role = MAC
            (self.mac if role == MAC else self.ac).add_(per_step.cpu())
            self.layer_totals[name] = self.layer_totals.get(name, 0.0) + float(per_step.sum())
        for name, per_step in firing.items():
            per_step = per_step.double().cpu()
            self.spikes += per_step
            self.layer_spikes[name] = self.layer_spikes.get(name, 0) + per_step
            self.layer_neurons[name] = monitors.firing.neurons_seen.get(name, 0) // batch
        for kind, per_step in monitors.operations.per_kind().items():
            self.other[kind] = self.other.get(kind, torch.zeros(self.t_max, dtype=torch.float64)) + per_step.cpu()
        self.neurons = sum(monitors.firing.neurons_seen.values()) // batch
        self.images += batch

    def curves(self, energy: EnergyModel, roles: dict[str, str]) -> TimeCurves:
        """The curves of the batches added so far (per image, cumulative over steps)."""
        if self.images == 0:
            raise ValueError("cannot evaluate on an empty dataset")
        images = self.images
        steps = torch.arange(1, self.t_max + 1, dtype=torch.float64)
        cum_mac = self.mac.cumsum(0) / images
        cum_ac = self.ac.cumsum(0) / images
        masfr = self.spikes.cumsum(0) / (steps * max(self.neurons, 1) * images)
        return TimeCurves(
            t=[int(t) for t in steps],
            accuracy=(self.correct / images).tolist(),
            masfr=masfr.tolist(),
            mac=cum_mac.tolist(),
            ac=cum_ac.tolist(),
            energy_uj=[energy.energy_uj(m, a) for m, a in zip(cum_mac.tolist(), cum_ac.tolist())],
            images=images,
            neurons=self.neurons,
            roles=dict(sorted(roles.items())),
            layer_events={k: v / images for k, v in self.layer_totals.items()},
            other_ops={kind: (ops.cumsum(0) / images).tolist() for kind, ops in sorted(self.other.items())},
            layer_masfr={name: (count.cumsum(0) / (steps * max(self.layer_neurons[name], 1) * images)).tolist()
                         for name, count in self.layer_spikes.items()},
            layer_neurons=dict(self.layer_neurons),
        )


@torch.no_grad()
def evaluate_over_time(
    snn: nn.Module,
    dataset: Dataset,
    t_max: int,
    *,
    batch_size: int = 256,
    chunk: int = 8,
    encoder: Encoder | None = None,
    energy: EnergyModel | None = None,
    roles: dict[str, str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> TimeCurves:
    """Run ``snn`` for ``t_max`` steps per batch, ``[T, B, ...] → [T, B, classes]`` in chunks of ``chunk`` steps.

    A network in single-step mode (every step module in ``'s'``) is called once per step
    (``functional.multi_step_forward``); the counts follow the steps of each call either way.

    ``encoder.encode(x, t0, steps)`` makes the input steps (default: the network's own
    ``encoder``, else direct encoding; anything that is not an ``Encoder`` is a TypeError).
    ``roles`` overrides the traced MAC/AC role of named layers.
    """
    energy = energy or EnergyModel()
    encoder, device, loader = setup_run(snn, dataset, t_max, batch_size, chunk, encoder, device)
    totals = _Totals(t_max)
    traced: dict[str, str] | None = None
    monitors = _Monitors.on(snn)
    try:
        for x, y in tqdm(loader, desc=f"SNN t<={t_max}", disable=not progress, leave=False):
            x, y = x.to(device), y.to(device)
            if torch.isnan(x).any():
                raise ValueError("input batch contains NaN")
            if traced is None:
                traced = {**_trace_roles(snn, encoder, x[:1], *monitors.counters), **(roles or {})}
            monitors.clear()
            correct = _run_batch(snn, encoder, x, y, t_max, chunk)
            totals.add_batch(correct, monitors, traced, len(y))
    finally:
        monitors.remove()
    return totals.curves(energy, traced or {})


def setup_run(snn: nn.Module, dataset: Dataset, t_max: int, batch_size: int, chunk: int, encoder: Encoder | None,
           device: torch.device | str) -> tuple[Encoder, torch.device, DataLoader]:
    """Check the run's arguments, find the encoder, move ``snn`` to ``device`` in eval mode; the batches in order."""
    if int(t_max) != t_max or t_max < 1:
        raise ValueError(f"t_max must be an integer >= 1, got {t_max}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    device = torch.device(device)
    encoder = _encoder_of(snn, encoder)
    snn.to(device).eval()
    return encoder, device, make_loader(dataset, batch_size, shuffle=False)


def run_chunks(snn: nn.Module, encoder: Encoder, x: Tensor, t_max: int, chunk: int) -> Iterator[tuple[int, Tensor]]:
    """Run one batch ``x`` for ``t_max`` steps from a reset state, ``chunk`` steps per call: yields each call's
    first step and output; the state is reset again after the last."""
    functional.reset_net(snn)
    for t0 in range(0, t_max, chunk):
        yield t0, run_steps(snn, encoder.encode(x, t0, min(chunk, t_max - t0)))
    functional.reset_net(snn)


def _run_batch(snn: nn.Module, encoder: Encoder, x: Tensor, y: Tensor, t_max: int, chunk: int) -> Tensor:
    """Run one batch for ``t_max`` steps in chunks from a reset state; correct predictions per step, ``[t_max]``."""
    correct = torch.zeros(t_max, dtype=torch.float64)
    total = None  # the output summed over the steps run so far
    for t0, out in run_chunks(snn, encoder, x, t_max, chunk):
        k = min(chunk, t_max - t0)
        if out.shape[:2] != (k, len(y)):
            raise ValueError(f"the SNN returned shape {tuple(out.shape)}, expected [{k}, {len(y)}, classes]")
        acc_out = out.cumsum(0) if total is None else total + out.cumsum(0)
        total = acc_out[-1]
        correct[t0:t0 + k] += (acc_out.argmax(-1) == y).sum(1).double().cpu()
    return correct


def run_steps(snn: nn.Module, x_seq: Tensor) -> Tensor:
    """``snn`` on ``[T, B, ...]`` steps: one call, or one call per step for a single-step network."""
    if network_step_mode(snn) == "s":
        return functional.multi_step_forward(x_seq, snn)
    return snn(x_seq)


def _trace_roles(snn: nn.Module, encoder: Encoder, x: Tensor, *monitors: BaseMonitor) -> dict[str, str]:
    """MAC/AC roles from one single-step pass on one image, monitors paused, state reset after."""
    for m in monitors:
        m.disable()
    try:
        functional.reset_net(snn)
        x_seq = encoder.encode(x, 0, 1)
        spikes_in = x_seq if encoder.emits_spikes else None
        return trace_synapse_roles(snn, lambda: run_steps(snn, x_seq), input_spikes=spikes_in)
    finally:
        functional.reset_net(snn)
        for m in monitors:
            m.enable()
