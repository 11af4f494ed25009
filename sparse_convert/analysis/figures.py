"""The paper's figures from run results; each function returns a matplotlib ``Figure``.

Figure 2: SNN accuracy vs T, one row per (model, dataset), one column per method; dense
runs black, sparse red, ANN accuracy dashed, the chosen T marked.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no display is assumed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..fileio import atomic_path  # noqa: E402

COLORS = {"dense": "black", "sparse": "tab:red"}


def _kind(result: dict) -> str:
    return "sparse" if result["config"]["sparsity"] > 0 else "dense"


def accuracy_figure(results: Iterable[dict]) -> Figure:
    """Figure 2: accuracy (%) over T per (model, dataset) row and method column."""
    results = list(results)
    if not results:
        raise ValueError("no results to plot")
    rows = sorted({(r["config"]["model"], r["config"]["dataset"]) for r in results})
    cols = sorted({r["config"]["method"] for r in results})
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.2 * len(cols), 3.2 * len(rows)),
                             squeeze=False, constrained_layout=True)
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        cells[(r["config"]["model"], r["config"]["dataset"], r["config"]["method"])].append(r)
    for i, (model, dataset) in enumerate(rows):
        for j, method in enumerate(cols):
            ax = axes[i][j]
            seen_labels = set()
            for r in sorted(cells.get((model, dataset, method), []), key=lambda r: (_kind(r), r["config"]["seed"])):
                kind = _kind(r)
                color = COLORS[kind]
                label = None if kind in seen_labels else f"{kind} (density {r['density']['network']:.2f})"
                seen_labels.add(kind)
                steps = r["per_step"]["t"]
                acc = r["per_step"]["accuracy"]
                pts = [(t, 100 * a) for t, a in zip(steps, acc) if a is not None]
                style = "o-" if r.get("time_mode") == "window" else "-"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, lw=1.2, ms=3, label=label)
                ax.axhline(100 * r["ann_accuracy"], color=color, ls="--", lw=0.8)
                chosen = r["chosen"]
                ax.plot([chosen["t"]], [100 * chosen["accuracy"]], marker="*", ms=11, color=color,
                        markeredgecolor="white", zorder=5)
            ax.set_title(f"{model} / {dataset} / {method}", fontsize=9)
            ax.set_xlabel("time steps T")
            ax.set_ylabel("SNN accuracy (%)")
            ax.grid(alpha=0.3)
            if seen_labels:
                ax.legend(fontsize=7, loc="lower right")
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
