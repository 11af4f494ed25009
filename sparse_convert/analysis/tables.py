"""The paper's tables from run results: Table A4 (T, energy, accuracy per run group) and Table 1
(energy reduction and accuracy change, sparse vs dense), as row dictionaries, and renderers
for Markdown, CSV and LaTeX.

Runs that differ only in seed form one group; numbers are means over the group's seeds
and ``n`` says how many there were.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from statistics import mean
from typing import Any

Row = dict[str, Any]


def group_key(result: dict) -> tuple[str, str, str, str]:
    """(dataset, model, method, "dense" | "sparse") of one result."""
    cfg = result["config"]
    return cfg["dataset"], cfg["model"], cfg["method"], "sparse" if cfg["sparsity"] > 0 else "dense"


def table_a4(results: Iterable[dict]) -> list[Row]:
    """One row per (dataset, model, method, dense/sparse): means of T, energy, accuracies."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[group_key(r)].append(r)
    rows = []
    for (dataset, model, method, kind), runs in sorted(groups.items()):
        rows.append({
            "dataset": dataset, "model": model, "method": method, "connectivity": kind,
            "sparsity": mean(r["config"]["sparsity"] for r in runs),
            "network_density": mean(r["density"]["network"] for r in runs),
            "n": len(runs),
            "ann_accuracy": mean(r["ann_accuracy"] for r in runs),
            "T": mean(r["chosen"]["t"] for r in runs),
            "energy_uj": mean(r["chosen"]["energy_uj"] for r in runs),
            "snn_accuracy": mean(r["chosen"]["accuracy"] for r in runs),
        })
    return rows


def table_1(results: Iterable[dict]) -> list[Row]:
    """Energy reduction (%) and accuracy change (points) of sparse vs dense, per (dataset, model, method)."""
    by_kind = {(r["dataset"], r["model"], r["method"], r["connectivity"]): r for r in table_a4(results)}
    rows = []
    for (dataset, model, method, kind), sparse in sorted(by_kind.items()):
        dense = by_kind.get((dataset, model, method, "dense"))
        if kind != "sparse" or dense is None:
            continue
        rows.append({
            "dataset": dataset, "model": model, "method": method,
            "energy_reduction_pct": 100.0 * (dense["energy_uj"] - sparse["energy_uj"]) / dense["energy_uj"]
            if dense["energy_uj"] > 0 else None,
            "accuracy_change_pts": 100.0 * (sparse["snn_accuracy"] - dense["snn_accuracy"]),
            "n_dense": dense["n"], "n_sparse": sparse["n"],
        })
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and abs(value) < 1:
            return f"{value:.3g}"  # small energies keep three significant digits
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(rows: Sequence[Row], columns: Sequence[str] | None = None, digits: int = 2) -> str:
    """A GitHub-flavoured Markdown table of ``rows``."""
    columns = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_fmt(r.get(c), digits) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """CSV text of ``rows`` (full precision)."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_latex(rows: Sequence[Row], columns: Sequence[str] | None = None, digits: int = 2) -> str:
    """A ``tabular`` environment of ``rows`` (booktabs rules)."""
    columns = list(columns or (rows[0].keys() if rows else []))

    def esc(text: str) -> str:
        return text.replace("_", r"\_").replace("%", r"\%")

    lines = [r"\begin{tabular}{" + "l" * len(columns) + "}", r"\toprule",
             " & ".join(esc(c) for c in columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_fmt(r.get(c), digits)) for c in columns) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"
