"""Named energy models: each carries its source and what it prices; the 45 nm table is SpikingJelly's."""

import pytest
from spikingjelly.activation_based.op_counter.simple_energy import SimpleEnergyCostConfig

from sparse_convert.energy import (
    DEFAULT_ENERGY_MODEL,
    ENERGY_MODELS,
    EnergyModel,
    energy_by_model,
    energy_model,
    reduction_by_model,
)


def test_the_default_is_the_papers_45nm_fp32_model():
    assert DEFAULT_ENERGY_MODEL == "45nm-fp32"
    model = energy_model("45nm-fp32")
    assert (model.e_mac_pj, model.e_ac_pj) == (4.6, 0.9) == (EnergyModel().e_mac_pj, EnergyModel().e_ac_pj)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_the_45nm_presets_are_spikingjellys_table(precision):
    cost = getattr(SimpleEnergyCostConfig, precision)()
    model = energy_model(f"45nm-{precision}")
    assert (model.e_mac_pj, model.e_ac_pj) == (cost.e_mac_pj, cost.e_ac_pj)


def test_every_preset_cites_its_source_and_says_what_it_prices():
    assert set(ENERGY_MODELS) >= {"loihi", "truenorth", "tianjic", "spinnaker2"}
    for name, model in ENERGY_MODELS.items():
        assert model.name == name and model.source and model.prices
        assert model.to_dict()["name"] == name
    for chip in ("loihi", "truenorth", "tianjic", "spinnaker", "spinnaker2"):
        assert "SOp" in ENERGY_MODELS[chip].prices and "4.6 pJ" in ENERGY_MODELS[chip].prices
        assert "PMC10326429" in ENERGY_MODELS[chip].source


def test_an_unknown_model_is_an_error_listing_the_names():
    with pytest.raises(ValueError, match="unknown energy model 'tpu'.*45nm-fp32.*loihi"):
        energy_model("tpu")


def test_energy_and_reduction_under_every_preset():
    energies = energy_by_model(1e6, 2e6)
    assert energies["45nm-fp32"] == pytest.approx(4.6 + 1.8)
    assert energies["loihi"] == pytest.approx(4.6 + 2 * 23.6)
    table = reduction_by_model((0.0, 1e6), (0.0, 2.5e5))
    # a network of ACs only: one price per operation, the same reduction under every preset
    assert {round(row["reduction"], 12) for row in table.values()} == {0.75}
    assert table["truenorth"]["reference_uj"] == pytest.approx(2.5)
