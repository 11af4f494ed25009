"""The digits demo: a dense and a sparse MLP through every conversion method, with table and figure.

Each (method, dense | sparse) run lands in ``OUT/runs/<method>-<dense|sparse>/``; a run
whose ``result.json`` exists is reused, so an interrupted demo resumes. The ANN of each
connectivity is trained once and shared by all methods through its checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..analysis.figures import accuracy_figure, save_figure
from ..analysis.tables import table_1, table_a4, to_csv, to_markdown
from ..fileio import write_text_atomic
from ..methods import available_methods
from .config import RunConfig
from .runner import load_result, run
from .store import RESULT_FILE

DEMO_SPARSITY = 0.9
TABLE_COLUMNS = ["method", "connectivity", "network_density", "ann_accuracy", "snn_accuracy", "T",
                 "energy_uj", "energy_reduction_pct", "accuracy_change_pts"]


@dataclass
class DemoOutput:
    """Paths the demo wrote and the table rows it printed."""

    table_md: Path
    table_csv: Path
    figure: list[Path]
    rows: list[dict]


def demo_rows(results: list[dict]) -> list[dict]:
    """Table A4 rows with accuracies in %, and Table 1's reduction and change on the sparse rows."""
    changes = {(r["dataset"], r["model"], r["method"]): r for r in table_1(results)}
    rows = []
    for row in table_a4(results):
        row = dict(row, ann_accuracy=100 * row["ann_accuracy"], snn_accuracy=100 * row["snn_accuracy"])
        change = changes.get((row["dataset"], row["model"], row["method"])) if row["connectivity"] == "sparse" else None
        row["energy_reduction_pct"] = change["energy_reduction_pct"] if change else None
        row["accuracy_change_pts"] = change["accuracy_change_pts"] if change else None
        rows.append(row)
    return rows


def run_demo(out: str | os.PathLike, *, methods: list[str] | None = None, t_max: int = 64, seed: int = 0,
             sparsity: float = DEMO_SPARSITY, progress: bool = True) -> DemoOutput:
    """Run the demo into ``out`` and write ``table.md``, ``table.csv`` and ``accuracy_vs_t.png``/``.pdf``."""
    out = Path(out)
    methods = methods or available_methods()
    results = []
    for kind, s in (("dense", 0.0), ("sparse", sparsity)):
        shared_ann = None
        for method in methods:
            folder = out / "runs" / f"{method}-{kind}"
            if not (folder / RESULT_FILE).is_file():
                cfg = RunConfig(model="mlp", dataset="digits", method=method, sparsity=s, t_max=t_max, seed=seed)
                run(cfg, folder, ann_checkpoint=shared_ann, progress=progress)
            shared_ann = shared_ann or folder / "ann.safetensors"
            results.append(load_result(folder))
    rows = demo_rows(results)
    table_md, table_csv = out / "table.md", out / "table.csv"
    write_text_atomic(table_md, to_markdown(rows, TABLE_COLUMNS))
    write_text_atomic(table_csv, to_csv(rows, TABLE_COLUMNS))
    figure = save_figure(accuracy_figure(results), out / "accuracy_vs_t")
    return DemoOutput(table_md, table_csv, figure, rows)
