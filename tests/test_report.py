"""``sparse-convert report``: one Markdown report with Tables 1 / A4 / A2, Figures 2 and 3 and both tests."""

import re

import pytest
from scipy import stats
from sweep_fixtures import digits_sweep, tiny_toml  # noqa: F401
from synthetic_results import make_result

from sparse_convert.analysis.report import build_report, write_report
from sparse_convert.analysis.statistics import saturation_sample
from sparse_convert.cli import main
from sparse_convert.experiments.demo import run_demo
from sparse_convert.experiments.sweep import collect_results


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_report_of_a_digits_sweep_has_the_tables_figures_and_both_tests(digits_sweep, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "report" / "report.md"
    assert main(["report", str(digits_sweep), "--out", str(out)]) == 0
    assert "18 runs" in capsys.readouterr().out
    text = out.read_text()
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["Sweep stages", "Run groups", "Table 1: energy reduction and accuracy change, sparse vs dense",
                        "Table A4: T, energy and accuracy of each group", "Table A2: CHT vs DepGraph pruning",
                        "Table 1 under every energy model", "Figure 2: SNN accuracy vs T",
                        "Figure 3: saturation of firing rate and accuracy, and the time lag", "MASFR vs T",
                        "Statistics", "Saturation by layer depth: does the output layer's firing rate saturate last?"]
    assert _section(text, "Run groups").count("\n- **digits / mlp /") == 6  # 3 methods x dense/sparse
    assert len(re.findall(r"^\| digits \| mlp \| (aec|qcfs|snm) \| cht \|", _section(text, "Table 1"), re.M)) == 3
    assert len(re.findall(r"^\| digits \| mlp \|", _section(text, "Table A4"), re.M)) == 6
    assert "No rows" in _section(text, "Table A2")
    for name in ("accuracy_vs_t", "time_lag", "masfr_vs_t"):
        assert f"![{name}]({name}.png)" in text
        assert (out.parent / f"{name}.png").read_bytes()[:4] == b"\x89PNG" and (out.parent / f"{name}.pdf").exists()
    # one hidden layer: no depth to compare, and the section says why
    assert "12 without per-layer curves (or a single spiking layer)" in _section(text, "Saturation by layer depth")
    for name in ("table_1", "table_a4"):
        assert (out.parent / f"{name}.csv").exists() and (out.parent / f"{name}.tex").exists()

    # both tests, with n and effect sizes, equal to scipy on the runs' own saturation times
    sample = saturation_sample(collect_results(digits_sweep))
    assert sample.excluded_window == 6 and len(sample.pairs) + sample.excluded_unsaturated == 12
    statistics = _section(text, "Statistics")
    wilcoxon = stats.wilcoxon([p.accuracy_t for p in sample.pairs], [p.masfr_t for p in sample.pairs],
                              alternative="greater")
    all_row = re.search(r"^\| all \| (\d+) \| (\d+) \| ([\d.]+) \| ([^ ]+) \| ([^ ]+) \|", statistics, re.M)
    assert int(all_row[1]) == len(sample.pairs) and float(all_row[4]) == float(f"{wilcoxon.pvalue:.3g}")
    assert "| dense |" in statistics and "| sparse |" in statistics
    mwu = stats.mannwhitneyu(sample.lags(True), sample.lags(False))
    mwu_row = statistics.split("| n_sparse |", 1)[1].splitlines()[2]
    cells = [c.strip() for c in mwu_row.strip("|").split("|")]
    assert (int(cells[0]), int(cells[1])) == (len(sample.lags(True)), len(sample.lags(False)))
    assert float(cells[3]) == float(f"{mwu.pvalue:.3g}")


def test_report_refuses_a_folder_without_results(tmp_path, capsys):
    (tmp_path / "runs" / "empty").mkdir(parents=True)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 2
    assert f"no result.json under {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "r.md").exists()
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r.md")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_shows_table_a2_and_says_why_a_test_was_not_run(tmp_path):
    results = [make_result(model="vgg16", sparsity=0.5, topology=t, density=d) for t, d in
               (("cht", 0.56), ("depgraph", 0.57))] + [make_result(model="vgg16")]
    report = build_report(results)
    a2 = _section(report.markdown, "Table A2")
    assert "| digits | vgg16 | qcfs | cht | 44.00 |" in a2 and "| digits | vgg16 | qcfs | depgraph | 43.00 |" in a2
    statistics = _section(report.markdown, "Statistics")
    assert "dense: not run (the Wilcoxon test needs at least 2 pairs, got 1)" in statistics
    assert "Not run: the Mann-Whitney test needs at least 2 values per sample, got 2 and 1." in statistics
    written = write_report(report, tmp_path / "r.md")
    assert {p.name for p in written} >= {"r.md", "table_a2.csv", "table_a2.tex", "time_lag.png"}


@pytest.mark.slow
def test_the_demo_writes_its_table_and_the_same_report(tmp_path):
    out = run_demo(tmp_path, methods=["qcfs"], t_max=24, progress=False)
    assert out.report == tmp_path / "report.md" and "## Table 1" in out.report.read_text()
    assert out.table_md.read_text().startswith("| method | connectivity |")
    assert [p.name for p in out.figure] == ["accuracy_vs_t.png", "accuracy_vs_t.pdf"]
    assert [r["connectivity"] for r in out.rows] == ["dense", "sparse"]
    assert out.rows[1]["energy_reduction_pct"] > 0


def test_the_report_can_be_an_html_page_and_other_suffixes_are_refused(tmp_path):
    results = [make_result(), make_result(sparsity=0.9, topology="cht", density=0.12)]
    report = build_report(results)
    written = write_report(report, tmp_path / "r.html")
    page = written[0].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h2>Table 1" in page
    assert "<table>" in page and '<img alt="accuracy_vs_t" src="accuracy_vs_t.png"' in page
    assert (tmp_path / "accuracy_vs_t.png").is_file()
    with pytest.raises(ValueError, match=r"Markdown \(.md\) or HTML \(.html\)"):
        write_report(report, tmp_path / "r.txt")
    assert not (tmp_path / "r.txt").exists()
