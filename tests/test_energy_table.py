"""Table 1 under every named energy model: the same counts priced by each preset."""

import pytest
from sweep_fixtures import digits_sweep, tiny_toml  # noqa: F401
from synthetic_results import make_result

from sparse_convert.analysis.energy_models import table_1_by_energy_model
from sparse_convert.analysis.tables import table_1
from sparse_convert.energy import ENERGY_MODELS, energy_model
from sparse_convert.experiments.sweep import collect_results


def test_every_preset_prices_the_same_counts_and_45nm_fp32_is_table_1(digits_sweep):  # noqa: F811
    results = [r for r in collect_results(digits_sweep / "runs") if r["config"]["seed"] == 0]
    rows = table_1_by_energy_model(results)
    reference = {(r["method"], r["topology"]): r["energy_reduction_pct"] for r in table_1(results)}
    assert {r["energy_model"] for r in rows} == set(ENERGY_MODELS) and len(rows) == len(reference) * len(ENERGY_MODELS)
    for row in rows:
        if row["energy_model"] == "45nm-fp32":  # the prices the runs were evaluated with
            assert row["energy_reduction_pct"] == pytest.approx(reference[row["method"], row["topology"]], rel=1e-9)
        dense = next(r for r in results if r["config"]["method"] == row["method"] and r["config"]["sparsity"] == 0)
        preset = energy_model(row["energy_model"])
        by_hand = (dense["chosen"]["mac"] * preset.e_mac_pj + dense["chosen"]["ac"] * preset.e_ac_pj) / 1e6
        assert row["dense_uj"] == pytest.approx(by_hand, rel=1e-12)


def test_results_without_operation_counts_are_left_out():
    assert table_1_by_energy_model([make_result(), make_result(sparsity=0.9, density=0.1)]) == []
