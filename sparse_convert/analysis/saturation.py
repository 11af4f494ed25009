"""Saturation time of a curve over time steps, and the time lag between two of them (paper §2.3.2, Eq. 3).

The relative improvement at step ``t`` (1-based, t ≥ 2) is ``(y[t] − y[t−1]) / |y[t−1]|``;
0/0 counts as no improvement and x/0 with x > 0 as an infinite one. The saturation time
is the **smallest t such that the improvements at steps t+1, ..., t+window are all ≤
tolerance** (decreases count as "≤"). The returned t is therefore the last step before a
run of ``window`` flat steps; the curve's value there is reported with it. When no such
run fits inside the curve, the result says ``saturated=False`` and ``t=None``: a curve
that is still improving at T_max is never reported as saturating at T_max.

Latency: a deep SNN's output layer receives nothing until spikes have crossed every
layer (one per step), so its accuracy sits at a constant value (chance, or the class that
wins ties) for its first steps and only then rises. Read literally, the rule calls that
plateau saturation at t = 1. With ``skip_latency=True`` (the default) the search starts at
the last step of a constant initial stretch that ends in a rise; a curve that is constant
throughout still saturates at t = 1, and ``skip_latency=False`` gives the literal rule.

Per layer: a run's ``per_layer`` curves (each spiking layer's own firing rate, the terms
of MASFR's neuron-weighted mean) get the same rule, in the ``layers`` entry of its block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..defaults import SATURATION_TOLERANCE, SATURATION_WINDOW


@dataclass(frozen=True)
class Saturation:
    """Where a curve saturates: ``t`` (1-based step) and ``value`` there, or ``saturated=False``."""

    saturated: bool
    t: int | None
    value: float | None
    tolerance: float
    window: int

    def to_dict(self) -> dict:
        return asdict(self)


def relative_improvements(values: Sequence[float]) -> np.ndarray:
    """``(y[t] − y[t−1]) / |y[t−1]|`` for t = 2..len; entry ``i`` belongs to step ``i + 2``."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D curve, got shape {y.shape}")
    if np.isnan(y).any():
        raise ValueError("curve contains NaN")
    prev, cur = y[:-1], y[1:]
    diff = cur - prev
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / np.abs(prev)
    rel[(prev == 0) & (diff == 0)] = 0.0
    rel[(prev == 0) & (diff > 0)] = math.inf
    rel[(prev == 0) & (diff < 0)] = -math.inf
    return rel


def saturation_time(
    values: Sequence[float],
    *,
    tolerance: float = SATURATION_TOLERANCE,
    window: int = SATURATION_WINDOW,
    t: Sequence[int] | None = None,
    skip_latency: bool = True,
) -> Saturation:
    """Saturation of a curve sampled at consecutive steps ``t`` (default 1..len(values)); see module doc."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    steps = list(range(1, len(values) + 1)) if t is None else [int(s) for s in t]
    if len(steps) != len(values):
        raise ValueError(f"{len(values)} values but {len(steps)} steps")
    if any(b - a != 1 for a, b in zip(steps, steps[1:])):
        raise ValueError("saturation needs a curve at consecutive steps")
    flat = relative_improvements(values) <= tolerance
    start = _latency(values) if skip_latency else 0
    run = 0
    # flat[i] is the improvement into step i+2 (index i+1); a run of `window` flat entries
    # ending at flat[j] starts after step index j - window + 1.
    for j, ok in enumerate(flat):
        run = run + 1 if ok and j >= start else 0
        if run == window:
            i = j - window + 1
            return Saturation(True, steps[i], float(values[i]), tolerance, window)
    return Saturation(False, None, None, tolerance, window)


def _latency(values: Sequence[float]) -> int:
    """Index of the last step of a constant initial stretch that ends in a rise; 0 when there is none."""
    first = values[0]
    for k, v in enumerate(values):
        if v != first:
            return k - 1 if v > first else 0
    return 0


def time_lag(accuracy: Saturation, masfr: Saturation) -> int | None:
    """Accuracy saturation time − MASFR saturation time (paper Eq. 3); ``None`` if either never saturates."""
    if accuracy.t is None or masfr.t is None:
        return None
    return accuracy.t - masfr.t


def best_window(windows: Sequence[int], accuracies: Sequence[float]) -> tuple[int, float]:
    """(T, accuracy) of the window with the highest accuracy, the smallest T on ties (AEC, paper §3.2)."""
    if not windows or len(windows) != len(accuracies):
        raise ValueError("need one accuracy per window")
    best = max(range(len(windows)), key=lambda i: (accuracies[i], -windows[i]))
    return int(windows[best]), float(accuracies[best])


def saturation_block(accuracy: Sequence[float], masfr: Sequence[float], *,
                     layers: Mapping[str, Sequence[float]] | None = None,
                     tolerance: float = SATURATION_TOLERANCE, window: int = SATURATION_WINDOW) -> dict:
    """The ``saturation`` block of ``result.json``: both curves' saturation and their time lag, and with
    ``layers`` (each spiking layer's firing-rate curve, in depth order) a ``layers`` entry holding each
    layer's saturation by name, found by the same rule."""
    acc = saturation_time(accuracy, tolerance=tolerance, window=window)
    rate = saturation_time(masfr, tolerance=tolerance, window=window)
    block = {"accuracy": acc.to_dict(), "masfr": rate.to_dict(), "time_lag": time_lag(acc, rate)}
    if layers is not None:
        block["layers"] = {name: saturation_time(curve, tolerance=tolerance, window=window).to_dict()
                           for name, curve in layers.items()}
    return block


def layer_curves(result: dict) -> dict[str, list[float]] | None:
    """Each spiking layer's firing-rate curve from a result's ``per_layer`` block, by depth; ``None`` for
    results written before per-layer curves were recorded."""
    per_layer = result.get("per_layer")
    if not per_layer:
        return None
    ordered = sorted(per_layer.items(), key=lambda item: item[1]["depth"])
    return {name: entry["masfr"] for name, entry in ordered}


def result_saturation(result: dict, *, tolerance: float = SATURATION_TOLERANCE,
                      window: int = SATURATION_WINDOW) -> dict | None:
    """``saturation_block`` of a run's ``per_step`` (and ``per_layer``) curves; ``None`` for a window-mode
    (AEC) run."""
    if result.get("time_mode") != "integrate":
        return None
    per_step = result["per_step"]
    return saturation_block(per_step["accuracy"], per_step["masfr"], layers=layer_curves(result),
                            tolerance=tolerance, window=window)
