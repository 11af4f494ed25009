"""One Markdown report from a set of run results: run groups, Tables 1 / A4 / A2, Figures 2 and 3,
both statistical tests, and saturation by layer depth, in the order a reader needs them.

``build_report`` returns the text, the table rows and the figures; ``write_report`` writes
them (the Markdown file, each figure as PNG and PDF and each table as CSV and LaTeX next
to it). Tables and Figure 2 show each group's selected configuration
(``selection.select_best``: validation accuracy, never test); Figure 3 and the tests use
every integrate-mode run, as the paper's §3.3 uses every grid-search run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from ..fileio import check_writable, write_text_atomic
from .energy_models import table_1_by_energy_model
from .figures import accuracy_figure, layer_saturation_figure, masfr_figure, save_figure, time_lag_figure
from .selection import Selection, select_best
from .statistics import (
    LayerSample,
    MannWhitneyTest,
    PageTest,
    SaturationSample,
    WilcoxonTest,
    layer_saturation_sample,
    output_layer_tests,
    saturation_order_test,
    saturation_sample,
    time_lag_test,
)
from .tables import Row, table_1, table_a2, table_a4, to_csv, to_latex, to_markdown, to_percent

TABLE_COLUMNS = {
    "table_1": ["dataset", "model", "method", "topology", "sparsity", "energy_reduction_pct", "accuracy_change_pts",
                "n_dense", "n_sparse"],
    "table_a4": ["dataset", "model", "method", "connectivity", "topology", "sparsity", "network_density", "n",
                 "ann_accuracy", "snn_accuracy", "T", "energy_uj"],
    "table_a2": ["dataset", "model", "method", "topology", "network_sparsity_pct", "n", "T", "energy_uj",
                 "snn_accuracy"],
    "table_1_energy_models": ["dataset", "model", "method", "topology", "sparsity", "energy_model", "dense_uj",
                              "sparse_uj", "energy_reduction_pct"],
}
#: What each table needs, said when it has no rows.
_EMPTY_TABLE = {
    "table_1": "No rows: needs dense and sparse runs of the same dataset, model and method.",
    "table_a2": "No rows: needs sparse runs of both topologies `cht` and `depgraph` for one dataset, model and method.",
    "table_1_energy_models": "No rows: needs dense and sparse runs of the same dataset, model and method that record "
                             "their MAC and AC counts.",
}


@dataclass
class Report:
    """A report's Markdown text (which links ``<figure>.png``), its tables and its figures by file stem."""

    markdown: str
    tables: dict[str, list[Row]] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def _group_line(s: Selection) -> str:
    dataset, model, method, kind, topology, sparsity = s.group
    n = len(s.runs)
    ts = [r["chosen"]["t"] for r in s.runs]
    saturated = sum(r["chosen"]["rule"] == "accuracy saturation" for r in s.runs)
    window = s.runs[0].get("time_mode") == "window"
    rule = "best window" if window else f"accuracy saturated in {saturated} of {n}"
    mean = lambda key, src="chosen": sum(r[src][key] for r in s.runs) / n  # noqa: E731
    ann = sum(r["ann_accuracy"] for r in s.runs) / n
    level = f"{topology}, sparsity {sparsity:g}" if kind == "sparse" else topology
    return (f"- **{dataset} / {model} / {method} / {kind}** ({level}): best of {s.candidates} "
            f"configuration{'s' if s.candidates > 1 else ''} over {n} seed{'s' if n > 1 else ''}, validation "
            f"{_pct(s.val_accuracy)}; SNN test {_pct(mean('accuracy'))} at T = {sum(ts) / n:.3g} ({rule}), "
            f"ANN {_pct(ann)}, {mean('energy_uj'):.3g} µJ/image.")


def _wilcoxon_rows(sample: SaturationSample) -> tuple[list[Row], list[str]]:
    rows, notes = [], []
    for label, sparse in (("dense", False), ("sparse", True), ("all", None)):
        try:
            t: WilcoxonTest = saturation_order_test(sample, sparse)
        except ValueError as err:
            notes.append(f"{label}: not run ({err}).")
            continue
        rows.append({"runs": label, "n_pairs": t.n, "zero_differences": t.n_zero, "W_plus": t.statistic,
                     "p_value": f"{t.p_value:.3g}", "rank_biserial_r": t.effect_size,
                     "mean_lag": t.mean_difference, "median_lag": t.median_difference})
    return rows, notes


def _counted(labels: list[str]) -> str:
    """``a ×2, b`` for a list of labels with repeats."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in counts.items())


def _statistics_section(sample: SaturationSample) -> list[str]:
    lines = ["## Statistics", "",
             f"{len(sample.pairs)} integrate-mode runs whose accuracy and MASFR both saturate enter the tests; "
             f"left out: {sample.excluded_window} window-mode runs (AEC: T is a window size, no time course) and "
             f"{sample.excluded_unsaturated} runs whose accuracy or MASFR never saturates within T_max"
             + (f" ({_counted(sample.unsaturated_runs)})." if sample.unsaturated_runs else "."), "",
             "### Does accuracy saturate after the firing rate? One-sided Wilcoxon signed-rank test", "",
             "H1: accuracy saturation time > MASFR saturation time (paired per run). Zero differences are "
             "dropped (`n_pairs` counts them, `zero_differences` says how many); tied |differences| share their "
             "average rank. Effect size: matched-pairs rank-biserial r = (R+ − R−)/(R+ + R−).", ""]
    rows, notes = _wilcoxon_rows(sample)
    if rows:
        lines += [to_markdown(rows)]
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    lines += ["### Do sparse and dense time lags differ? Two-sided Mann-Whitney U test", ""]
    try:
        t: MannWhitneyTest = time_lag_test(sample)
    except ValueError as err:
        return lines + [f"Not run: {err}.", ""]
    row = {"n_sparse": t.n_a, "n_dense": t.n_b, "U_sparse": t.statistic, "p_value": f"{t.p_value:.3g}",
           "rank_biserial": t.rank_biserial, "common_language": t.common_language,
           "mean_lag_sparse": t.mean_a, "mean_lag_dense": t.mean_b}
    return lines + ["Ties share their average rank. Effect sizes: rank-biserial = P(sparse lag > dense lag) − "
                    "P(sparse < dense); common-language = P(sparse > dense) + P(equal)/2.", "",
                    to_markdown([row])]


#: The per-layer tests, as the report names them: H1 and what is compared.
LAYER_TESTS = {
    "output_after_masfr": "deepest layer after MASFR (one-sided Wilcoxon)",
    "output_last": "deepest layer after every other layer (one-sided Wilcoxon vs the latest other)",
    "accuracy_vs_output": "accuracy vs deepest layer (two-sided Wilcoxon)",
    "depth_trend": "saturation time rises with depth (Page's L)",
}


def _layer_rows(sample: LayerSample) -> tuple[list[Row], list[Row], list[str]]:
    """Mean saturation time by depth per connectivity, the per-layer tests, and notes on tests not run."""
    means, tests, notes = [], [], []
    depth = max((len(r.layers_t) for r in sample.runs), default=0)
    for label, sparse in (("dense", False), ("sparse", True), ("all", None)):
        runs = sample.of(sparse)
        if not runs:
            continue
        row: Row = {"runs": label, "n": len(runs)}
        for d in range(depth):
            values = [r.layers_t[d] for r in runs if len(r.layers_t) > d]
            row[f"layer_{d + 1}"] = sum(values) / len(values) if values else None
        row["masfr"] = sum(r.masfr_t for r in runs) / len(runs)
        row["accuracy"] = sum(r.accuracy_t for r in runs) / len(runs)
        row["deepest_last"] = sum(r.output_t >= r.others_t for r in runs)
        row["deepest_strictly_last"] = sum(r.output_t > r.others_t for r in runs)
        means.append(row)
        for name, t in output_layer_tests(sample, sparse).items():
            if isinstance(t, str):
                notes.append(f"{label}, {LAYER_TESTS[name]}: not run ({t}).")
            elif isinstance(t, PageTest):
                tests.append({"runs": label, "test": LAYER_TESTS[name], "n": t.n, "zero_differences": "–",
                              "statistic": t.statistic, "p_value": f"{t.p_value:.3g}", "effect_size": t.mean_spearman,
                              "mean_difference": "–", "median_difference": "–"})
            else:
                tests.append({"runs": label, "test": LAYER_TESTS[name], "n": t.n, "zero_differences": t.n_zero,
                              "statistic": t.statistic, "p_value": f"{t.p_value:.3g}", "effect_size": t.effect_size,
                              "mean_difference": t.mean_difference, "median_difference": t.median_difference})
    return means, tests, notes


def _layer_section(sample: LayerSample, figures: dict[str, Figure]) -> list[str]:
    """Saturation time by layer depth: the figure, the means and the tests of §3.3's explanation."""
    lines = ["## Saturation by layer depth: does the output layer's firing rate saturate last?", "",
             "§3.3 explains the time lag by the firing rate of the output layer stabilising after the model "
             "average. Each spiking layer's own firing rate (spikes per neuron per step, averaged over steps 1..T "
             "like MASFR, whose neuron-weighted mean they are) gets the same saturation rule; the deepest spiking "
             "layer is the one the output layer integrates. "
             f"{len(sample.runs)} integrate-mode runs whose accuracy, MASFR and every layer saturate enter; left "
             f"out: {sample.excluded_window} window-mode runs, {sample.excluded_no_layers} without per-layer "
             f"curves (or a single spiking layer) and {len(sample.unsaturated_runs)} with a curve that never "
             "saturates.", ""]
    lines += _figure("layer_saturation", layer_saturation_figure, sample, figures,
                     "Saturation time of each spiking layer's firing rate by depth, then MASFR's and accuracy's "
                     "(grey); boxes: quartiles over runs, ◆: means, dots: runs.")
    if not sample.runs:
        return lines
    means, tests, notes = _layer_rows(sample)
    lines += ["Mean saturation time (steps) by depth; `deepest_last`: runs whose deepest layer saturates no earlier "
              "than every other layer (`deepest_strictly_last`: later than every other).", "",
              to_markdown(means), "",
              "Wilcoxon rows: `statistic` is W+ of (first − second), zero differences dropped (`n` counts them), "
              "effect size the matched-pairs rank-biserial r. Page's L row: `effect_size` is the mean Spearman ρ "
              "of depth and saturation time per run.", ""]
    if tests:
        lines += [to_markdown(tests)]
    return lines + [f"- {note}" for note in notes] + ([""] if notes else [])


def _figure(name: str, make: Callable[[object], Figure], data: object, figures: dict[str, Figure],
            caption: str) -> list[str]:
    try:
        figures[name] = make(data)
    except ValueError as err:
        return [f"Not drawn: {err}.", ""]
    return [f"![{name}]({name}.png)", "", caption, ""]


def _skipped_section(skipped: Mapping[str | os.PathLike, str]) -> list[str]:
    """The list of result files left out of the report, and why."""
    if not skipped:
        return []
    n = len(skipped)
    return (["## Skipped result files", "", f"{n} `result.json` file{'s' if n > 1 else ''} could not be read and "
             f"{'are' if n > 1 else 'is'} left out of everything below:", ""]
            + [f"- {why}" for why in skipped.values()] + [""])  # each reason names its file


def _stages_section(stages: Sequence[dict]) -> list[str]:
    """The table of a sweep's stages: tasks complete, failed and skipped, and the wall time they spent."""
    if not stages:
        return []
    return (["## Sweep stages", "", "Tasks of each stage found in the sweep folder (a skipped conversion is one "
             "whose ANN stage failed); wall time summed over the complete tasks, in seconds.", "",
             to_markdown(list(stages), ["stage", "complete", "failed", "skipped", "wall_s"]), ""])


def build_report(results: Sequence[dict], *, title: str = "sparse-convert report", source: str | None = None,
                 skipped: Mapping[str | os.PathLike, str] | None = None, stages: Sequence[dict] = ()) -> Report:
    """The report of ``results`` (run result dictionaries); raises ``ValueError`` when there are none.
    ``skipped`` (path → reason) lists result files that could not be read, in a section of their own;
    ``stages`` (``sweep.stage_table``) adds a section on a sweep's stages."""
    results = list(results)
    if not results:
        raise ValueError("no results to report")
    try:
        selections = select_best(results)
        shown = [r for s in selections for r in s.runs]
        selection_note = (f"Model selection: per group (dataset, model, method, dense/sparse, topology, "
                          f"sparsity) the configuration with the highest mean validation accuracy over its seeds, "
                          f"never the test set; {len(shown)} of {len(results)} runs are shown in the tables and "
                          f"Figure 2.")
    except ValueError as err:
        selections, shown = [], results
        selection_note = f"No model selection ({err}); tables and Figure 2 show every run."
    cfgs = [r["config"] for r in results]
    listing = lambda key: ", ".join(sorted({str(c[key]) for c in cfgs}))  # noqa: E731
    lines = [f"# {title}", "",
             f"{len(results)} runs{f' from `{source}`' if source else ''}: models {listing('model')}; datasets "
             f"{listing('dataset')}; methods {listing('method')}; sparsities {listing('sparsity')}; seeds "
             f"{listing('seed')}.", "", selection_note, "",
             "Chosen T: accuracy saturation time for methods that integrate every step (paper §2.3.2: the "
             "relative improvement stays ≤ 1 % for 10 steps, counted after a deep network's initial latency "
             "plateau; T_max when it never does), the best window for AEC. "
             "Accuracies in %, energy in µJ per image at the chosen T.", ""]
    lines += _stages_section(stages)
    lines += _skipped_section(skipped or {})
    if selections:
        lines += ["## Run groups", ""] + [_group_line(s) for s in selections] + [""]

    tables = {"table_1": table_1(shown), "table_a4": to_percent(table_a4(shown)),
              "table_a2": to_percent(table_a2(shown)), "table_1_energy_models": table_1_by_energy_model(shown)}
    captions = {
        "table_1": "## Table 1: energy reduction and accuracy change, sparse vs dense\n\nreduction = (E_dense − "
                   "E_sparse) / E_dense × 100; accuracy change = sparse − dense SNN accuracy, in points.",
        "table_a4": "## Table A4: T, energy and accuracy of each group\n\nMeans over the group's seeds (`n`).",
        "table_a2": "## Table A2: CHT vs DepGraph pruning\n\nSparse SNNs of matched sparsity from CHT and from "
                    "DepGraph; network-wise sparsity = 1 − density of all synaptic layers.",
        "table_1_energy_models": "## Table 1 under every energy model\n\nThe same MAC and AC counts at the chosen T, "
                                 "priced by each named energy model (µJ per image). A model that prices every "
                                 "operation alike gives the reduction of the operation counts; the neuromorphic "
                                 "chips price only synaptic operations, and the analog first layer's MACs at the "
                                 "45 nm fp32 MAC.",
    }
    for name, rows in tables.items():
        lines += [captions[name], ""]
        if rows:
            lines += [to_markdown(rows, TABLE_COLUMNS[name])]
        else:
            lines += [_EMPTY_TABLE.get(name, "No rows."), ""]

    figures: dict[str, Figure] = {}
    lines += ["## Figure 2: SNN accuracy vs T", ""]
    lines += _figure("accuracy_vs_t", accuracy_figure, shown, figures,
                     "Dense black, sparse red (one colour per topology and sparsity when there are several); "
                     "dashed: ANN accuracy; ★: the chosen T (accuracy saturation, or AEC's "
                     "best window, whose runs are drawn at their window sizes).")
    lines += ["## Figure 3: saturation of firing rate and accuracy, and the time lag", ""]
    sample = saturation_sample(results)  # once, for Figure 3 and the tests
    lines += _figure("time_lag", time_lag_figure, sample, figures,
                     "(a) MASFR vs accuracy saturation time per integrate-mode run; above the y = x line (shaded) "
                     "the firing rate saturates first; colour: number of runs on the point. (b) Time lag = accuracy "
                     "− MASFR saturation time, dense black and sparse red (kernel density, or a histogram for few "
                     "runs); dashed: means.")
    lines += ["## MASFR vs T", ""]
    lines += _figure("masfr_vs_t", masfr_figure, shown, figures,
                     "●: MASFR saturation; dotted: accuracy saturation; arrow: the time lag.")
    lines += _statistics_section(sample)
    lines += _layer_section(layer_saturation_sample(results), figures)
    return Report("\n".join(lines).rstrip() + "\n", tables, figures)


def write_table(rows: Sequence[Row], columns: Sequence[str], stem: str | os.PathLike,
                formats: Sequence[str] = ("md", "csv", "tex")) -> list[Path]:
    """Write ``rows`` as ``stem.md`` / ``stem.csv`` / ``stem.tex``; returns the paths written."""
    render = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
    paths = []
    for ext in formats:
        path = Path(f"{stem}.{ext}")
        write_text_atomic(path, render[ext](rows, columns))
        paths.append(path)
    return paths


def to_html(markdown_text: str, title: str = "sparse-convert report") -> str:
    """A standalone HTML page of the report's Markdown (Python-Markdown with its tables extension)."""
    import html

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>\n"
            f"<style>{HTML_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


HTML_STYLE = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;line-height:1.45}"
              "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.25em .6em}"
              "img{max-width:100%}")


def check_report_path(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``path`` names a Markdown or HTML file that can be written (with its
    figures and tables beside it); creates nothing."""
    path = Path(path)
    if path.suffix.lower() not in (".md", ".markdown", ".html", ".htm"):
        raise ValueError(f"the report is Markdown (.md) or HTML (.html), got {path.name!r}")
    check_writable(path, "report --out", folder=False)


def write_report(report: Report, path: str | os.PathLike) -> list[Path]:
    """Write the report to ``path`` (Markdown, or an HTML page when ``path`` ends in ``.html``) and its
    figures (PNG, PDF) and tables (CSV, LaTeX) beside it."""
    path = Path(path)
    check_report_path(path)  # before any figure is written
    folder = path.parent
    written = []
    for name, fig in report.figures.items():
        written += save_figure(fig, folder / name)
    for name, rows in report.tables.items():
        if rows:
            written += write_table(rows, TABLE_COLUMNS[name], folder / name, formats=("csv", "tex"))
    html = path.suffix.lower() in (".html", ".htm")
    write_text_atomic(path, to_html(report.markdown) if html else report.markdown)
    return [path, *written]
