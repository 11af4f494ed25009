"""NeuroBench's metrics (``neurobench`` on the package index, v2) for an SNN, at every t ≤ t_max from one run.

NeuroBench's definitions, as its ``metrics`` package computes them:

* ``synaptic_operations``: at each call of a Linear / Conv1d / Conv2d / Conv3d layer, the
  nonzero inputs reaching nonzero weights (bias excluded) — our synaptic events — are
  ``Effective_ACs`` when every input value of that call is in {−1, 0, 1} and
  ``Effective_MACs`` otherwise; ``Dense`` counts every input reaching every weight (zeros
  included). All three per sample. Our own ``mac`` / ``ac`` classify by where an input
  comes from (a spiking node's θ-scaled spikes are ACs); NeuroBench's value test calls
  them MACs. Both are reported, side by side, never mixed.
* ``activation_sparsity``: 1 − (nonzero outputs of the spiking nodes) / (all their outputs),
  over every step and sample; an element carrying two spikes (AEC) is one nonzero output.
* ``connection_sparsity``: zero weights / all weights of those layers, rounded to 4 decimals.

How the SNN is wrapped for NeuroBench (``NeuroBenchSNN``): NeuroBench feeds a batch as
``[B, T, ...]`` (or a static ``[B, ...]``) and never resets state, so the wrapper resets the
network, makes the ``[T, B, ...]`` steps (time-major; a static input is encoded by the
network's encoder over ``steps``), runs them in one call and returns the output summed over
time. One call per batch means each layer is classified once per batch over all T steps;
``neurobench_over_time`` classifies the same way (per batch, over steps 1..t), so its value
at t equals NeuroBench's run with ``steps = t`` and the same batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from spikingjelly.activation_based import functional
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..encoding import Encoder
from .events import COUNTED_TYPES, effective_weight, input_shape, is_counted, layer_fanout
from .monitors import StepCountMonitor, SynapticEventMonitor
from .roles import NODE_TYPES
from .timeline import _encoder_of, run_chunks, run_steps, setup_run


class NeuroBenchSNN(nn.Module):
    """``snn`` as NeuroBench calls a model: a batch in, the time-summed output ``[B, classes]`` out, state reset."""

    def __init__(self, snn: nn.Module, steps: int, encoder: Encoder | None = None):
        super().__init__()
        self.snn = snn
        self.steps = int(steps)
        self.encoder = _encoder_of(snn, encoder)

    def forward(self, x: Tensor, static: bool | None = None) -> Tensor:
        """``x`` is ``[B, T, ...]`` (time-major after a transpose) or a static ``[B, ...]`` encoded over ``steps``."""
        functional.reset_net(self.snn)
        in_shape = getattr(self.snn, "in_shape", None)
        if static is None:
            static = in_shape is None or x.dim() == len(in_shape) + 1
        x_seq = self.encoder.encode(x, 0, self.steps) if static else x.transpose(0, 1)
        out = run_steps(self.snn, x_seq).sum(0)
        functional.reset_net(self.snn)
        return out


def connection_sparsity(net: nn.Module) -> float:
    """Zero weights / all weights of the Linear and Conv layers of ``net`` (NeuroBench's, to 4 decimals)."""
    zeros = total = 0
    for m in net.modules():
        if is_counted(m) and not list(m.children()):
            w = effective_weight(m).detach()
            zeros += int((w == 0).sum())
            total += w.numel()
    if total == 0:
        raise ValueError(f"{type(net).__name__} has no Linear or Conv layer")
    return round(zeros / total, 4)


class _ValueTestMonitor(StepCountMonitor):
    """Per call and step of every counted layer: whether inputs are all in {−1, 0, 1}, and dense operations."""

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self._dense: dict[tuple, Tensor] = {}
        self._watch(net, tuple(COUNTED_TYPES))

    def count(self, name: str, module: nn.Module, x: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        shape = input_shape(module, x)
        key = (id(module), shape)
        if key not in self._dense:
            self._dense[key] = _dense_fanout(module, shape).sum()
        rows = x.reshape(steps, -1)
        unit = ~((rows != 0) & (rows.abs() != 1)).any(1)  # NeuroBench's spike test, per step
        dense = self._dense[key] * (x.numel() // math.prod(shape) // steps)  # × samples per step
        return unit.cpu(), torch.full((steps,), float(dense), dtype=torch.float64)


def _dense_fanout(layer: nn.Module, shape: tuple[int, ...]) -> Tensor:
    """Every weight reached by each input position (zeros included)."""
    return layer_fanout(layer, shape, torch.ones_like(layer.weight, dtype=torch.bool))


class _NonzeroMonitor(StepCountMonitor):
    """Nonzero outputs per step of every spiking node, and their output elements per step."""

    reads = "output"

    def __init__(self, net: nn.Module):
        super().__init__(net)
        self.elements: dict[str, int] = {}
        self._watch(net, NODE_TYPES)

    def count(self, name: str, module: nn.Module, out: Tensor, steps: int) -> Tensor:
        self.elements[name] = out.numel() // steps
        return (out != 0).reshape(steps, -1).sum(1).to(torch.float64).cpu()


@dataclass
class NeuroBenchCurves:
    """NeuroBench's metrics for a run of t steps at index ``t-1`` (per sample), plus connection sparsity."""

    t: list[int]
    effective_macs: list[float]
    effective_acs: list[float]
    dense: list[float]
    activation_sparsity: list[float]
    connection_sparsity: float
    samples: int

    def at(self, t: int) -> dict:
        """NeuroBench's result dict for a run of ``t`` steps."""
        if t not in self.t:
            raise ValueError(f"t={t} was not evaluated (have {self.t[0]}..{self.t[-1]})")
        i = self.t.index(t)
        ops = {"Effective_MACs": self.effective_macs[i], "Effective_ACs": self.effective_acs[i], "Dense": self.dense[i]}
        return {"synaptic_operations": ops,
                "activation_sparsity": self.activation_sparsity[i],
                "connection_sparsity": self.connection_sparsity}


#: What ``result.json``'s ``neurobench`` block says about itself.
NEUROBENCH_NOTE = ("NeuroBench v2 definitions: Effective_ACs are synaptic operations whose layer input "
                   "(per layer call, here per batch over steps 1..t) is entirely in {-1, 0, 1}, Effective_MACs "
                   "the others, so threshold-scaled spikes count as MACs here; the top-level mac/ac classify by "
                   "where the input comes from (spiking node: AC). Per sample; Dense counts zeros too.")


def neurobench_block(curves: NeuroBenchCurves, chosen_t: int) -> dict:
    """The ``neurobench`` block of ``result.json``: the metrics at the chosen T and at t_max, with a note."""
    return {"chosen_t": chosen_t, "at_chosen_t": curves.at(chosen_t), "t_max": curves.t[-1],
            "at_t_max": curves.at(curves.t[-1]), "note": NEUROBENCH_NOTE}


@torch.no_grad()
def neurobench_over_time(
    snn: nn.Module,
    dataset: Dataset,
    t_max: int,
    *,
    batch_size: int = 256,
    chunk: int = 8,
    encoder: Encoder | None = None,
    device: torch.device | str = "cpu",
) -> NeuroBenchCurves:
    """NeuroBench's synaptic operations and activation sparsity of ``snn`` at every t ≤ ``t_max``, in one run."""
    encoder, device, loader = setup_run(snn, dataset, t_max, batch_size, chunk, encoder, device)
    nb_mac = torch.zeros(t_max, dtype=torch.float64)
    nb_ac = torch.zeros(t_max, dtype=torch.float64)
    dense = torch.zeros(t_max, dtype=torch.float64)
    nonzero = torch.zeros(t_max, dtype=torch.float64)
    samples = elements = 0
    events, values, outputs = SynapticEventMonitor(snn), _ValueTestMonitor(snn), _NonzeroMonitor(snn)
    try:
        for x, _ in loader:
            x = x.to(device)
            for m in (events, values, outputs):
                m.clear_recorded_data()
            for _ in run_chunks(snn, encoder, x, t_max, chunk):
                pass
            for name, per_step in events.per_layer().items():
                unit = torch.cat([u for u, _ in values[name]])
                spiking_so_far = unit.to(torch.int64).cumprod(0).bool()  # one classification per batch call
                cum = per_step.cpu().cumsum(0)
                nb_ac += torch.where(spiking_so_far, cum, torch.zeros_like(cum))
                nb_mac += torch.where(spiking_so_far, torch.zeros_like(cum), cum)
                dense += torch.cat([d for _, d in values[name]]).cumsum(0)
            for name in outputs.monitored_layers:
                if outputs[name]:
                    nonzero += torch.cat(outputs[name]).cumsum(0)
            elements = sum(outputs.elements.values())
            samples += len(x)
            elements_per_sample = elements // len(x)
    finally:
        for m in (events, values, outputs):
            m.remove_hooks()
    if samples == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    steps = torch.arange(1, t_max + 1, dtype=torch.float64)
    sparsity = 1.0 - nonzero / (steps * max(elements_per_sample, 1) * samples)
    return NeuroBenchCurves(t=[int(t) for t in steps], effective_macs=(nb_mac / samples).tolist(),
                            effective_acs=(nb_ac / samples).tolist(), dense=(dense / samples).tolist(),
                            activation_sparsity=sparsity.tolist(), connection_sparsity=connection_sparsity(snn),
                            samples=samples)
