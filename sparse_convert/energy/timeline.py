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

from dataclasses import asdict, dataclass, field

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..encoding import DirectEncoder
from ..training import make_loader
from .model import EnergyModel
from .monitors import OperationCountMonitor, ProductEventMonitor, SpikeCountMonitor, SynapticEventMonitor
from .roles import MAC, trace_synapse_roles
from .steps import network_step_mode


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


def _encoder_of(net: nn.Module, encoder):
    if encoder is not None:
        return encoder
    found = getattr(net, "encoder", None)
    if found is None:
        return DirectEncoder()  # a plain SpikingJelly network: direct input
    return found


@torch.no_grad()
def evaluate_over_time(
    snn: nn.Module,
    dataset: Dataset,
    t_max: int,
    *,
    batch_size: int = 256,
    chunk: int = 8,
    encoder=None,
    energy: EnergyModel | None = None,
    roles: dict[str, str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> TimeCurves:
    """Run ``snn`` for ``t_max`` steps per batch, ``[T, B, ...] → [T, B, classes]`` in chunks of ``chunk`` steps.

    A network in single-step mode (every step module in ``'s'``) is called once per step
    (``functional.multi_step_forward``); the counts follow the steps of each call either way.

    ``encoder.encode(x, t0, steps)`` makes the input steps (default: the network's own
    ``encoder``, else direct encoding). ``roles`` overrides the traced MAC/AC role of
    named layers.
    """
    if int(t_max) != t_max or t_max < 1:
        raise ValueError(f"t_max must be an integer >= 1, got {t_max}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    energy = energy or EnergyModel()
    device = torch.device(device)
    encoder = _encoder_of(snn, encoder)
    snn.to(device).eval()
    loader = make_loader(dataset, batch_size, shuffle=False)

    correct = torch.zeros(t_max, dtype=torch.float64)
    spikes = torch.zeros(t_max, dtype=torch.float64)
    mac = torch.zeros(t_max, dtype=torch.float64)
    ac = torch.zeros(t_max, dtype=torch.float64)
    layer_totals: dict[str, float] = {}
    layer_spikes: dict[str, Tensor] = {}
    layer_neurons: dict[str, int] = {}
    other: dict[str, Tensor] = {}
    images = neurons = 0
    traced: dict[str, str] | None = None

    events = SynapticEventMonitor(snn)
    firing = SpikeCountMonitor(snn)
    products = ProductEventMonitor(snn)
    operations = OperationCountMonitor(snn)
    monitors = (events, firing, products, operations)
    try:
        for x, y in tqdm(loader, desc=f"SNN t<={t_max}", disable=not progress, leave=False):
            x, y = x.to(device), y.to(device)
            if torch.isnan(x).any():
                raise ValueError("input batch contains NaN")
            if traced is None:
                traced = _trace_roles(snn, encoder, x[:1], *monitors)
                traced.update(roles or {})
            functional.reset_net(snn)
            for m in monitors:
                m.clear_recorded_data()
            total = None
            for t0 in range(0, t_max, chunk):
                k = min(chunk, t_max - t0)
                out = run_steps(snn, encoder.encode(x, t0, k))
                if out.shape[:2] != (k, len(y)):
                    raise ValueError(f"the SNN returned shape {tuple(out.shape)}, expected [{k}, {len(y)}, classes]")
                acc_out = out.cumsum(0) if total is None else total + out.cumsum(0)
                total = acc_out[-1]
                correct[t0:t0 + k] += (acc_out.argmax(-1) == y).sum(1).double().cpu()
            functional.reset_net(snn)
            for name, per_step in {**events.per_layer(), **products.per_layer(), **firing.per_layer()}.items():
                if len(per_step) not in (0, t_max):
                    raise RuntimeError(f"{name} recorded {len(per_step)} time steps in a run of {t_max}: a module "
                                       f"called more than once per step cannot be counted per step")
            for name, per_step in {**events.per_layer(), **products.per_layer()}.items():
                role = traced.get(name)
                if role is None:  # layer not reached by the trace input; count it as analog
                    role = MAC
                (mac if role == MAC else ac).add_(per_step.cpu())
                layer_totals[name] = layer_totals.get(name, 0.0) + float(per_step.sum())
            for name, per_step in firing.per_layer().items():
                per_step = per_step.double().cpu()
                spikes += per_step
                layer_spikes[name] = layer_spikes.get(name, 0) + per_step
                layer_neurons[name] = firing.neurons_seen.get(name, 0) // len(y)
            for kind, per_step in operations.per_kind().items():
                other[kind] = other.get(kind, torch.zeros(t_max, dtype=torch.float64)) + per_step.cpu()
            neurons = sum(firing.neurons_seen.values()) // len(y)
            images += len(y)
    finally:
        for m in monitors:
            m.remove_hooks()
    if images == 0:
        raise ValueError("cannot evaluate on an empty dataset")

    steps = torch.arange(1, t_max + 1, dtype=torch.float64)
    cum_mac = mac.cumsum(0) / images
    cum_ac = ac.cumsum(0) / images
    masfr = spikes.cumsum(0) / (steps * max(neurons, 1) * images)
    return TimeCurves(
        t=[int(t) for t in steps],
        accuracy=(correct / images).tolist(),
        masfr=masfr.tolist(),
        mac=cum_mac.tolist(),
        ac=cum_ac.tolist(),
        energy_uj=[energy.energy_uj(m, a) for m, a in zip(cum_mac.tolist(), cum_ac.tolist())],
        images=images,
        neurons=neurons,
        roles=dict(sorted((traced or {}).items())),
        layer_events={k: v / images for k, v in layer_totals.items()},
        other_ops={kind: (ops.cumsum(0) / images).tolist() for kind, ops in sorted(other.items())},
        layer_masfr={name: (count.cumsum(0) / (steps * max(layer_neurons[name], 1) * images)).tolist()
                     for name, count in layer_spikes.items()},
        layer_neurons=dict(layer_neurons),
    )


def run_steps(snn: nn.Module, x_seq: Tensor) -> Tensor:
    """``snn`` on ``[T, B, ...]`` steps: one call, or one call per step for a single-step network."""
    if network_step_mode(snn) == "s":
        return functional.multi_step_forward(x_seq, snn)
    return snn(x_seq)


def _trace_roles(snn: nn.Module, encoder, x: Tensor, *monitors) -> dict[str, str]:
    """MAC/AC roles from one single-step pass on one image, monitors paused, state reset after."""
    for m in monitors:
        m.disable()
    try:
        functional.reset_net(snn)
        x_seq = encoder.encode(x, 0, 1)
        spikes_in = x_seq if getattr(encoder, "emits_spikes", False) else None
        return trace_synapse_roles(snn, lambda: run_steps(snn, x_seq), input_spikes=spikes_in)
    finally:
        functional.reset_net(snn)
        for m in monitors:
            m.enable()
