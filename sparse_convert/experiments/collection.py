"""What a sweep folder holds, read back: every complete run, the stages' counts, and ``best.json``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..analysis.selection import select_best
from ..fileio import write_json_atomic
from .result import ANN_RESULT_FILE, AnnResult, RunResult
from .stages import ANNS_DIR, ERRORS_DIR, RUNS_DIR, run_name

BEST_FILE = "best.json"


def collect_results(folder: str | os.PathLike, skipped: dict[Path, str] | None = None) -> list[dict[str, Any]]:
    """The documents of ``RunResult.collect(folder, skipped)``: every complete run under ``folder``, sorted by
    path, as the analysis functions take them."""
    return [result.to_dict() for result in RunResult.collect(folder, skipped)]


def stage_table(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Per stage of the sweep in ``folder``: how many tasks are complete, failed and skipped, and the wall time
    their complete runs spent (ANN: training; conversion: preparation and evaluation), from the files the
    sweep left (a run whose result cannot be read is not complete). Empty when ``folder`` is not a sweep
    folder."""
    folder = Path(folder)
    if not any((folder / sub).is_dir() for sub in (ANNS_DIR, RUNS_DIR, ERRORS_DIR)):
        return []
    anns = sorted((folder / ANNS_DIR).glob(f"*/{ANN_RESULT_FILE}"))
    ann_errors = list((folder / ERRORS_DIR / ANNS_DIR).glob("*.txt"))
    errors = [p.read_text() for p in (folder / ERRORS_DIR).glob("*.txt")]
    runs = RunResult.collect(folder / RUNS_DIR, skipped={}) if (folder / RUNS_DIR).is_dir() else []
    timings = [run.timing for run in runs]  # a result that cannot be read is left out (report lists it)
    convert_s = sum(float(t.get("prepare_s", 0.0)) + float(t.get("evaluate_s", 0.0)) for t in timings)
    if not anns:  # without sharing, each run trained its own ANN
        convert_s += sum(float(t.get("train_s", 0.0)) for t in timings)
    rows = [{"stage": "conversion", "complete": len(runs), "failed": sum(not e.startswith("skipped") for e in errors),
             "skipped": sum(e.startswith("skipped") for e in errors), "wall_s": round(convert_s, 1)}]
    if anns or ann_errors:
        train_s = sum(float(AnnResult.load(p).timing.get("train_s", 0.0)) for p in anns)
        rows.insert(0, {"stage": "ANN training", "complete": len(anns), "failed": len(ann_errors), "skipped": 0,
                        "wall_s": round(train_s, 1)})
    return rows


def best_configurations(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``best.json`` document: per group, the configuration with the highest mean validation accuracy."""
    groups = []
    for selection in select_best(results):
        entry = selection.to_dict()
        entry["runs"] = [run_name(r["config"]) for r in selection.runs]
        groups.append(entry)
    return {"rule": "highest mean validation accuracy over seeds (chosen.val_accuracy, else ann_val_accuracy); "
                    "the test set is never used", "groups": groups}


def write_best(out: str | os.PathLike) -> Path | None:
    """Write ``out/best.json`` from the complete runs under ``out/runs``; None when there are none."""
    results = collect_results(Path(out) / RUNS_DIR)
    if not results:
        return None
    path = Path(out) / BEST_FILE
    write_json_atomic(path, best_configurations(results))
    return path
