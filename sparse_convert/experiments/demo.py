"""The digits demo: a dense and a sparse MLP through every conversion method, with table, figures and report.

Each (method, dense | sparse) run lands in ``OUT/runs/<method>-<dense|sparse>/``; a run
whose ``result.json`` exists is reused when it holds the same configuration, so an interrupted
demo resumes; one of another configuration (another ``--seed`` or ``--t-max``) is an error
found before any training, unless ``force`` reruns every run. The ANN of each
connectivity is trained once and shared by all methods through its checkpoint. The
table, figures and ``report.md`` are written by ``analysis.report``, as ``sparse-convert
report`` writes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..analysis.report import build_report, write_report, write_table
from ..analysis.tables import table_1, table_a4, to_percent
from ..fileio import check_writable
from ..methods import available_methods
from .config import RunConfig
from .pairs import connectivity_folder, finished_run, run_or_load

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
    report: Path | None = None


def demo_rows(results: list[dict]) -> list[dict]:
    """Table A4 rows with accuracies in %, and Table 1's reduction and change on the sparse rows."""
    changes = {(r["dataset"], r["model"], r["method"], r["topology"]): r for r in table_1(results)}
    rows = []
    for row in to_percent(table_a4(results)):
        key = (row["dataset"], row["model"], row["method"], row["topology"])
        change = changes.get(key) if row["connectivity"] == "sparse" else None
        row["energy_reduction_pct"] = change["energy_reduction_pct"] if change else None
        row["accuracy_change_pts"] = change["accuracy_change_pts"] if change else None
        rows.append(row)
    return rows


def run_demo(out: str | os.PathLike, *, methods: list[str] | None = None, t_max: int = 64, seed: int = 0,
             sparsity: float = DEMO_SPARSITY, progress: bool = True, force: bool = False) -> DemoOutput:
    """Run the demo into ``out`` and write ``table.md``, ``table.csv``, ``report.md`` and its figures
    (``accuracy_vs_t.png``/``.pdf`` among them). Finished runs of the same configuration are reused;
    ``force`` reruns them all (see module doc)."""
    out = Path(out)
    check_writable(out, "demo --out", folder=True)
    methods = methods or available_methods()
    plan = [(RunConfig(model="mlp", dataset="digits", method=method, sparsity=s, t_max=t_max, seed=seed,
                       topology="cht" if s > 0 else "static"),  # the sparse MLP is CHT-trained
             connectivity_folder(out / "runs", method, s)) for s in (0.0, sparsity) for method in methods]
    for config, folder in plan if not force else []:  # before any training
        finished_run(config, folder)
    results, shared_ann = [], {}
    for config, folder in plan:
        results.append(run_or_load(config, folder, ann_checkpoint=shared_ann.get(config.sparsity),
                                   progress=progress, force=force))
        shared_ann.setdefault(config.sparsity, folder / "ann.safetensors")
    rows = demo_rows(results)
    table_md, table_csv = write_table(rows, TABLE_COLUMNS, out / "table", formats=("md", "csv"))
    report = build_report(results, title="sparse-convert demo: dense vs sparse MLP on digits", source=str(out))
    written = write_report(report, out / "report.md")
    figure = [p for p in written if p.stem == "accuracy_vs_t"]
    return DemoOutput(table_md, table_csv, figure, rows, written[0])
