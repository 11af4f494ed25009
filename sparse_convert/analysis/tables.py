"""The paper's tables from run results: Table A4 (T, energy, accuracy per run group), Table 1
(energy reduction and accuracy change, sparse vs dense) and Table A2 (CHT vs DepGraph pruning),
as row dictionaries, and renderers for Markdown, CSV and LaTeX.

A group is (dataset, model, method, dense | sparse, topology, sparsity) (``selection.group_key``);
numbers are means over the group's runs and ``n`` says how many there were. Pass the
runs of the selected configurations (``selection.best_runs``) so that a group's runs
differ only in seed. Accuracies are fractions; ``to_percent`` turns them into %.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from statistics import mean
from typing import Any

from .selection import group_key

Row = dict[str, Any]

#: Pruning-based topologies compared with CHT in Table A2 (paper Appendix C).
A2_TOPOLOGIES = ("cht", "depgraph")
ACCURACY_COLUMNS = ("ann_accuracy", "snn_accuracy")


def table_a4(results: Iterable[dict]) -> list[Row]:
    """One row per (dataset, model, method, dense/sparse, topology, sparsity): means of T, energy, accuracies."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[group_key(r)].append(r)
    rows = []
    for (dataset, model, method, kind, topology, sparsity), runs in sorted(groups.items()):
        rows.append({
            "dataset": dataset, "model": model, "method": method, "connectivity": kind, "topology": topology,
            "sparsity": sparsity,
            "network_density": mean(r["density"]["network"] for r in runs),
            "n": len(runs),
            "ann_accuracy": mean(r["ann_accuracy"] for r in runs),
            "T": mean(r["chosen"]["t"] for r in runs),
            "energy_uj": mean(r["chosen"]["energy_uj"] for r in runs),
            "snn_accuracy": mean(r["chosen"]["accuracy"] for r in runs),
        })
    return rows


def table_1(results: Iterable[dict]) -> list[Row]:
    """Energy reduction (%) and accuracy change (points) of each sparse group vs the dense group of the
    same (dataset, model, method); groups without a dense partner are left out."""
    a4 = table_a4(results)
    dense_of = {(r["dataset"], r["model"], r["method"]): r for r in a4 if r["connectivity"] == "dense"}
    rows = []
    for sparse in a4:
        dataset, model, method = sparse["dataset"], sparse["model"], sparse["method"]
        dense = dense_of.get((dataset, model, method))
        if sparse["connectivity"] != "sparse" or dense is None:
            continue
        rows.append({
            "dataset": dataset, "model": model, "method": method, "topology": sparse["topology"],
            "sparsity": sparse["sparsity"],
            "energy_reduction_pct": 100.0 * (dense["energy_uj"] - sparse["energy_uj"]) / dense["energy_uj"]
            if dense["energy_uj"] > 0 else None,
            "accuracy_change_pts": 100.0 * (sparse["snn_accuracy"] - dense["snn_accuracy"]),
            "n_dense": dense["n"], "n_sparse": sparse["n"],
        })
    return rows


def table_a2(results: Iterable[dict], topologies: Sequence[str] = A2_TOPOLOGIES) -> list[Row]:
    """Sparse groups of each ``topologies`` rule side by side (network-wise sparsity in %, T, energy,
    accuracy), for every (dataset, model, method) that has runs of all of them; else no rows."""
    by_cell: dict[tuple, dict[str, Row]] = defaultdict(dict)
    for row in table_a4(results):
        if row["connectivity"] == "sparse" and row["topology"] in topologies:
            by_cell[(row["dataset"], row["model"], row["method"], row["sparsity"])][row["topology"]] = row
    rows = []
    for (dataset, model, method, _), found in sorted(by_cell.items()):
        if set(found) != set(topologies):
            continue
        for topology in topologies:
            row = found[topology]
            rows.append({"dataset": dataset, "model": model, "method": method, "topology": topology,
                         "network_sparsity_pct": 100.0 * (1.0 - row["network_density"]), "n": row["n"],
                         "T": row["T"], "energy_uj": row["energy_uj"], "snn_accuracy": row["snn_accuracy"]})
    return rows


def to_percent(rows: Sequence[Row], columns: Sequence[str] = ACCURACY_COLUMNS) -> list[Row]:
    """Copies of ``rows`` with the fractions in ``columns`` multiplied by 100."""
    return [{k: (100.0 * v if k in columns and v is not None else v) for k, v in r.items()} for r in rows]


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
