"""Tables 1, A4, A2, model selection and Figures 2 / 3 from hand-built results."""

import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from synthetic_results import make_result

from sparse_convert.analysis.figures import accuracy_figure, masfr_figure, save_figure, time_lag_figure
from sparse_convert.analysis.selection import best_runs, select_best
from sparse_convert.analysis.tables import table_1, table_a2, table_a4, to_csv, to_latex, to_markdown, to_percent


def test_table_a4_groups_seeds_and_table_1_compares_sparse_with_dense():
    results = [make_result(seed=0, energy_uj=10.0, acc=0.80), make_result(seed=1, energy_uj=12.0, acc=0.84),
               make_result(sparsity=0.9, seed=0, energy_uj=1.0, acc=0.86, density=0.1)]
    a4 = table_a4(results)
    assert [(r["connectivity"], r["n"]) for r in a4] == [("dense", 2), ("sparse", 1)]
    assert a4[0]["energy_uj"] == pytest.approx(11.0) and a4[0]["snn_accuracy"] == pytest.approx(0.82)
    (row,) = table_1(results)
    assert row["energy_reduction_pct"] == pytest.approx(100 * (11 - 1) / 11)
    assert row["accuracy_change_pts"] == pytest.approx(4.0)
    assert to_percent(a4)[1]["snn_accuracy"] == pytest.approx(86.0)


def test_table_a2_only_when_cht_and_depgraph_runs_exist_for_the_same_cell():
    cht = make_result(sparsity=0.5, topology="cht", density=0.56, energy_uj=2.0, model="vgg16")
    dep = make_result(sparsity=0.5, topology="depgraph", density=0.5652, energy_uj=1.8, model="vgg16")
    other = make_result(sparsity=0.5, topology="depgraph", density=0.5, model="vgg16", method="snm")
    assert table_a2([cht, other]) == []
    rows = table_a2([cht, dep, other, make_result(model="vgg16")])
    assert [r["topology"] for r in rows] == ["cht", "depgraph"]
    assert rows[0]["network_sparsity_pct"] == pytest.approx(44.0)
    assert rows[1]["network_sparsity_pct"] == pytest.approx(43.48)
    assert (rows[1]["T"], rows[1]["energy_uj"]) == (8, pytest.approx(1.8))
    # Table A4 keeps the two sparse topologies apart, and Table 1 compares each with the dense run
    assert len(table_a4([cht, dep])) == 2
    assert [r["topology"] for r in table_1([cht, dep, make_result(model="vgg16")])] == ["cht", "depgraph"]


def test_renderers():
    rows = [{"method": "qcfs", "energy_uj": 0.0123, "T": 12, "change": None}]
    assert to_markdown(rows).splitlines() == ["| method | energy_uj | T | change |", "|---|---|---|---|",
                                              "| qcfs | 0.0123 | 12 | – |"]
    assert to_csv(rows).splitlines() == ["method,energy_uj,T,change", "qcfs,0.0123,12,"]
    latex = to_latex(rows, ["method", "energy_uj"])
    assert r"method & energy\_uj \\" in latex and r"qcfs & 0.0123 \\" in latex and latex.startswith(r"\begin")


def test_selection_uses_validation_accuracy_never_test():
    good_val = [make_result(seed=s, options={"levels": 4}, val=0.90, acc=0.70) for s in (0, 1)]
    good_test = [make_result(seed=s, options={"levels": 8}, val=0.80, acc=0.99) for s in (0, 1)]
    (sel,) = select_best(good_val + good_test)
    assert sel.candidates == 2 and sel.val_accuracy == pytest.approx(0.90)
    assert [r["config"]["method_options"] for r in sel.runs] == [{"levels": 4}] * 2
    assert best_runs(good_test + good_val) == good_val


def test_selection_averages_seeds_and_falls_back_to_the_ann_validation_accuracy():
    a = [make_result(seed=0, options={"l": 1}, val=0.95), make_result(seed=1, options={"l": 1}, val=0.70)]
    b = [make_result(seed=0, options={"l": 2}, val=0.85), make_result(seed=1, options={"l": 2}, val=0.84)]
    assert select_best(a + b)[0].runs == b  # mean 0.845 beats 0.825
    no_snn_val = make_result(val=None, ann=0.9)
    assert select_best([no_snn_val])[0].val_accuracy == pytest.approx(0.88)  # ann_val_accuracy
    blind = make_result(val=None)
    blind["ann_val_accuracy"] = None
    with pytest.raises(ValueError, match="no validation accuracy"):
        select_best([blind])


def _lines_with_marker(ax, marker):
    return [line for line in ax.get_lines() if line.get_marker() == marker]


def test_figure_2_marks_the_chosen_t_and_draws_aec_at_its_windows():
    results = [make_result(acc_t=12), make_result(sparsity=0.9, acc_t=15, density=0.1),
               make_result(method="aec"), make_result(method="aec", sparsity=0.9)]
    fig = accuracy_figure(results)
    ax_aec, ax_qcfs = fig.axes[:2]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["mlp / digits / aec", "mlp / digits / qcfs"]
    stars = _lines_with_marker(ax_qcfs, "*")
    assert sorted(line.get_xdata()[0] for line in stars) == [12, 15]
    assert {line.get_color() for line in stars} == {"black", "tab:red"}
    curve = [line for line in ax_aec.get_lines() if line.get_marker() == "o"][0]
    assert list(curve.get_xdata()) == [2, 4, 8, 16, 32]
    assert _lines_with_marker(ax_aec, "*")[0].get_xdata()[0] == 8
    dashed = [line for line in ax_qcfs.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 2 and dashed[0].get_ydata()[0] == pytest.approx(92.0)  # ANN accuracy, %


def test_masfr_figure_marks_the_saturation_points():
    fig = masfr_figure([make_result(acc_t=12, masfr_t=5), make_result(method="aec")])
    ax = fig.axes[1]
    (dot,) = _lines_with_marker(ax, "o")
    assert (dot.get_xdata()[0], dot.get_ydata()[0]) == (5, pytest.approx(0.2))
    assert any(line.get_linestyle() == ":" and line.get_xdata()[0] == 12 for line in ax.get_lines())
    assert any(text.get_text() == "lag +7" for text in ax.texts)


def test_figure_3_scatter_counts_overlaps_and_shades_above_the_diagonal():
    dense = [make_result(seed=s, acc_t=10, masfr_t=4) for s in range(3)] + [make_result(seed=3, acc_t=8, masfr_t=9)]
    sparse = [make_result(sparsity=0.9, seed=s, acc_t=12 + s, masfr_t=4) for s in range(6)]
    fig = time_lag_figure(dense + sparse + [make_result(method="aec")])
    ax_dense, ax_sparse, ax_lag = fig.axes[:3]
    assert ax_dense.get_title() == "(a) dense SNNs (n = 4)" and ax_sparse.get_title() == "(a) sparse SNNs (n = 6)"
    (points,) = [c for c in ax_dense.collections if isinstance(c, PathCollection)]
    counts = dict(zip(map(tuple, points.get_offsets().tolist()), points.get_array().tolist()))
    assert counts == {(4.0, 10.0): 3, (9.0, 8.0): 1}
    (shade,) = [c for c in ax_dense.collections if isinstance(c, PolyCollection)]
    ys = shade.get_paths()[0].vertices[:, 1]
    assert ys.min() == 0 and ys.max() == ax_dense.get_ylim()[1]  # from the diagonal up to the top
    diagonal = [line for line in ax_dense.get_lines() if line.get_label() == "y = x"][0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    # (b): sparse has 6 distinct lags → KDE curve; dense has 4 → histogram; dashed means
    means = {line.get_color(): line.get_xdata()[0] for line in ax_lag.get_lines() if line.get_linestyle() == "--"}
    assert means["black"] == pytest.approx(np.mean([6, 6, 6, -1]))
    assert means["tab:red"] == pytest.approx(np.mean([8, 9, 10, 11, 12, 13]))
    assert any(line.get_color() == "tab:red" and line.get_linestyle() == "-" for line in ax_lag.get_lines())


def test_figures_refuse_empty_input_with_a_reason():
    with pytest.raises(ValueError, match="no results"):
        accuracy_figure([])
    with pytest.raises(ValueError, match="2 window-mode runs, 1 that never saturate"):
        time_lag_figure([make_result(method="aec"), make_result(method="aec"), make_result(acc_t=None)])


def test_save_figure_writes_png_and_pdf(tmp_path):
    paths = save_figure(accuracy_figure([make_result()]), tmp_path / "fig")
    assert [p.name for p in paths] == ["fig.png", "fig.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
