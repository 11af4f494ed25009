"""The paper's figures from run results; each function returns a matplotlib ``Figure``.

* Figure 2, ``accuracy_figure``: SNN accuracy vs T, one row per (model, dataset), one
  column per method; dense runs black, sparse red (one colour per topology and sparsity
  when there are several), ANN accuracy dashed, the chosen T
  marked (★: accuracy saturation, or AEC's best window; AEC is drawn at its windows).
* ``masfr_figure``: MASFR vs T in the same grid, with the MASFR saturation point (●), the
  accuracy saturation time (dotted line) and the time lag between them (arrow).
* Figure 3, ``time_lag_figure``: (a) MASFR vs accuracy saturation time per run, dense and
  sparse panels, y = x line, the region above it (firing rate saturates first) shaded,
  colour = number of runs on that point; (b) the time-lag distributions, dense black and
  sparse red, dashed lines at the means.
* ``layer_saturation_figure``: saturation time of each spiking layer's firing rate by depth
  (the last is the layer the output reads), beside MASFR's and accuracy's, dense and sparse
  panels: boxes over runs, one dot per run (§3.3's explanation of the time lag).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy.stats import gaussian_kde  # noqa: E402

from ..fileio import atomic_path  # noqa: E402
from .saturation import result_saturation  # noqa: E402
from .selection import connectivity  # noqa: E402
from .statistics import LayerSample, SaturationSample, layer_saturation_sample, saturation_sample  # noqa: E402

COLORS = {"dense": "black", "sparse": "tab:red"}
#: Colours of the sparse runs when a figure holds several (topology, sparsity) variants, in sorted order.
SPARSE_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan", "tab:gray")
SHADE = "tab:green"
#: Fewest distinct-valued samples for a kernel density estimate; fewer get a histogram.
KDE_MIN_SAMPLES = 5


def _grid(results: list[dict], what: str) -> tuple[Figure, np.ndarray, list, list, dict]:
    """A (model, dataset) × method grid of axes, and the runs of each cell."""
    if not results:
        raise ValueError(f"no results to plot for the {what} figure")
    rows = sorted({(r["config"]["model"], r["config"]["dataset"]) for r in results})
    cols = sorted({r["config"]["method"] for r in results})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.2 * len(rows)),
                             squeeze=False, constrained_layout=True)
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        cells[(r["config"]["model"], r["config"]["dataset"], r["config"]["method"])].append(r)
    for key in cells:
        cells[key].sort(key=lambda r: (connectivity(r), r["config"]["seed"]))
    return fig, axes, rows, cols, cells


def _variant(r: dict) -> tuple[str, float] | None:
    """(topology, sparsity) of a sparse run; None for a dense one."""
    return (r["config"]["topology"], r["config"]["sparsity"]) if connectivity(r) == "sparse" else None


def _label(r: dict, seen: set, several: bool) -> str | None:
    """The legend label of ``r``'s variant the first time it is drawn in a panel (``several``: name the
    sparse variants by topology and sparsity)."""
    variant = _variant(r)
    if variant in seen:
        return None
    seen.add(variant)
    kind = f"{variant[0]} {variant[1]:g}" if several and variant else connectivity(r)
    return f"{kind} (density {r['density']['network']:.2f})"


def _defined(steps: list[int], values: list[float | None], scale: float = 1.0) -> tuple[list, list]:
    pts = [(t, scale * v) for t, v in zip(steps, values) if v is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _curve_grid(results: Iterable[dict], what: str, key: str, scale: float,
                decorate: Callable[[Axes, dict, str, int], None]) -> Figure:
    """One panel per (model, dataset) row and method column with ``per_step[key]`` over T per run
    (window-mode runs as points); ``decorate(ax, result, color, runs in the panel)`` adds the marks."""
    results = list(results)
    fig, axes, rows, cols, cells = _grid(results, what)
    variants = sorted({v for v in map(_variant, results) if v is not None})
    colors = {None: COLORS["dense"], **{v: SPARSE_COLORS[i % len(SPARSE_COLORS)] for i, v in enumerate(variants)}}
    for i, (model, dataset) in enumerate(rows):
        for j, method in enumerate(cols):
            ax = axes[i][j]
            seen: set = set()
            panel = cells.get((model, dataset, method), [])
            for r in panel:
                color = colors[_variant(r)]
                ts, values = _defined(r["per_step"]["t"], r["per_step"][key], scale)
                style = "o-" if r.get("time_mode") == "window" else "-"
                ax.plot(ts, values, style, color=color, lw=1.2, ms=3, label=_label(r, seen, len(variants) > 1))
                decorate(ax, r, color, len(panel))
            ax.set_title(f"{model} / {dataset} / {method}", fontsize=9)
            ax.set_xlabel("time steps T")
            ax.set_ylabel(what)
            ax.grid(alpha=0.3)
            if seen:
                ax.legend(fontsize=7, loc="lower right")
    return fig


def _mark_ann_and_chosen(ax: Axes, r: dict, color: str, _: int) -> None:
    ax.axhline(100 * r["ann_accuracy"], color=color, ls="--", lw=0.8)
    chosen = r["chosen"]
    ax.plot([chosen["t"]], [100 * chosen["accuracy"]], marker="*", ms=11, color=color,
            markeredgecolor="white", zorder=5)


def accuracy_figure(results: Iterable[dict]) -> Figure:
    """Figure 2: accuracy (%) over T per (model, dataset) row and method column."""
    return _curve_grid(results, "SNN accuracy (%)", "accuracy", 100.0, _mark_ann_and_chosen)


def masfr_figure(results: Iterable[dict]) -> Figure:
    """MASFR over T per (model, dataset) row and method column, with saturation points and time lags."""
    return _curve_grid(results, "MASFR", "masfr", 1.0,
                       lambda ax, r, color, n: _mark_lag(ax, result_saturation(r), color, label_lag=n <= 2))


def _mark_lag(ax: Axes, block: dict | None, color: str, label_lag: bool) -> None:
    """MASFR saturation point, accuracy saturation line and the arrow from one to the other (labelled
    with the lag when ``label_lag``)."""
    if block is None:
        return
    rate, acc = block["masfr"], block["accuracy"]
    if rate["saturated"]:
        ax.plot([rate["t"]], [rate["value"]], "o", ms=7, color=color, markeredgecolor="white", zorder=5)
    if acc["saturated"]:
        ax.axvline(acc["t"], color=color, ls=":", lw=1.0)
    if block["time_lag"] is not None:
        ax.annotate("", xy=(acc["t"], rate["value"]), xytext=(rate["t"], rate["value"]),
                    arrowprops={"arrowstyle": "->", "color": color, "lw": 1.0})
        if label_lag:
            ax.annotate(f"lag {block['time_lag']:+d}", xy=((acc["t"] + rate["t"]) / 2, rate["value"]),
                        xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7, color=color)


def time_lag_figure(results: Iterable[dict] | SaturationSample) -> Figure:
    """Figure 3: (a) saturation-time scatter, dense and sparse panels; (b) time-lag distributions.

    Takes run results, or their ``saturation_sample`` when the caller has it already.
    """
    sample = results if isinstance(results, SaturationSample) else saturation_sample(results)
    if not sample.pairs:
        raise ValueError(f"no run with saturated accuracy and MASFR curves to plot ({sample.excluded_window} "
                         f"window-mode runs, {sample.excluded_unsaturated} that never saturate)")
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.0), constrained_layout=True)
    top = max(max(p.accuracy_t, p.masfr_t) for p in sample.pairs) + 1
    most = max(Counter((p.sparse, p.masfr_t, p.accuracy_t) for p in sample.pairs).values())
    for ax, (kind, sparse) in zip(axes[:2], (("dense", False), ("sparse", True))):
        _saturation_scatter(ax, [(p.masfr_t, p.accuracy_t) for p in sample.of(sparse)], top, kind, most)
    _lag_distribution(axes[2], {kind: sample.lags(kind == "sparse") for kind in COLORS})
    return fig


def _saturation_scatter(ax: Axes, points: list[tuple[int, int]], top: int, kind: str, most: int) -> None:
    line = np.array([0, top])
    ax.fill_between(line, line, top, color=SHADE, alpha=0.15, lw=0, label="accuracy saturates later")
    ax.plot(line, line, color="gray", lw=1.0, label="y = x")
    if points:
        counts = Counter(points)
        xy = np.array(list(counts))
        dots = ax.scatter(xy[:, 0], xy[:, 1], c=list(counts.values()), cmap="viridis", s=30,
                          edgecolors="black", linewidths=0.4, zorder=3, vmin=1, vmax=max(most, 2))
        bar = ax.figure.colorbar(dots, ax=ax, label="overlapping runs")
        bar.set_ticks(range(1, max(most, 2) + 1, max(1, most // 6)))
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="MASFR saturation time", ylabel="accuracy saturation time",
           title=f"(a) {kind} SNNs (n = {len(points)})")
    ax.legend(fontsize=7, loc="lower right")


def _lag_distribution(ax: Axes, lags: dict[str, list[int]]) -> None:
    values = [v for vs in lags.values() for v in vs]
    grid = np.linspace(min(values) - 3, max(values) + 3, 400)
    for kind, vs in lags.items():
        if not vs:
            continue
        color = COLORS[kind]
        label = f"{kind} (n = {len(vs)}, mean {np.mean(vs):+.2f})"
        if len(vs) >= KDE_MIN_SAMPLES and len(set(vs)) > 1:
            ax.plot(grid, gaussian_kde(vs)(grid), color=color, lw=1.5, label=label)
        else:
            edges = np.arange(min(values) - 0.5, max(values) + 1.5)
            ax.hist(vs, bins=edges, density=True, histtype="step", color=color, lw=1.5, label=label)
        ax.axvline(float(np.mean(vs)), color=color, ls="--", lw=1.0)
    ax.set(xlabel="time lag = accuracy − MASFR saturation time", ylabel="density", title="(b) time-lag distribution")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def layer_saturation_figure(results: Iterable[dict] | LayerSample) -> Figure:
    """Saturation time by layer depth, then MASFR's and accuracy's, dense and sparse panels (boxes over runs,
    jittered dots per run; the run counts and how often the deepest layer saturates last in the titles).

    Takes run results, or their ``layer_saturation_sample``.
    """
    sample = results if isinstance(results, LayerSample) else layer_saturation_sample(results)
    if not sample.runs:
        raise ValueError(f"no run whose accuracy, MASFR and every spiking layer saturate ({sample.excluded_window} "
                         f"window-mode runs, {sample.excluded_no_layers} without per-layer curves or with one "
                         f"spiking layer, "
                         f"{len(sample.unsaturated_runs)} with a curve that never saturates)")
    depth = max(len(r.layers_t) for r in sample.runs)
    labels = [f"layer {d}" for d in range(1, depth + 1)] + ["MASFR", "accuracy"]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.0), constrained_layout=True, sharey=True)
    jitter = np.random.default_rng(0)
    for ax, (kind, sparse) in zip(axes, (("dense", False), ("sparse", True))):
        runs = sample.of(sparse)
        columns = [[r.layers_t[d] for r in runs if len(r.layers_t) > d] for d in range(depth)]
        columns += [[r.masfr_t for r in runs], [r.accuracy_t for r in runs]]
        color = COLORS[kind]
        for i, values in enumerate(columns, start=1):
            if not values:
                continue
            shade = color if i <= depth else "gray"
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False, medianprops={"color": shade},
                       boxprops={"color": shade}, whiskerprops={"color": shade}, capprops={"color": shade})
            ax.scatter(i + jitter.uniform(-0.18, 0.18, len(values)), values, s=8, color=shade, alpha=0.35, lw=0)
            ax.plot([i], [np.mean(values)], marker="D", ms=5, color=shade, markeredgecolor="white", zorder=4)
        last = sum(r.output_t >= r.others_t for r in runs)
        ax.set_xticks(range(1, len(labels) + 1), labels, rotation=20)
        ax.set(ylabel="saturation time (steps)",
               title=f"{kind} SNNs (n = {len(runs)}; deepest layer last in {last})" if runs else f"{kind}: no runs")
        ax.grid(alpha=0.3, axis="y")
    return fig


def save_figure(fig: Figure, stem: str | os.PathLike, formats: tuple[str, ...] = ("png", "pdf"),
                dpi: int = 150) -> list[Path]:
    """Write ``fig`` atomically as ``stem.png`` / ``stem.pdf`` and close it; returns the paths written."""
    paths = []
    for ext in formats:
        path = Path(f"{stem}.{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=ext)
        paths.append(path)
    plt.close(fig)
    return paths
