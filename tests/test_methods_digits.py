"""Methods 2 and 3 end to end on digits, on the same dense and 90 %-sparse ANNs as method 1."""

import pytest

from sparse_convert.experiments import RunConfig, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(digits_runs, tmp_path_factory):
    out = {}
    for sparsity, (folder, _) in digits_runs.items():
        for method in ("snm", "aec"):
            cfg = RunConfig(method=method, sparsity=sparsity, t_max=64, seed=0)
            out[method, sparsity] = run(cfg, tmp_path_factory.mktemp(method), progress=False,
                                        ann_checkpoint=folder / "ann.safetensors")
    return out


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_snm_at_t64_is_within_two_points_of_the_ann(converted, sparsity):
    result = converted["snm", sparsity]
    assert abs(result["per_step"]["accuracy"][63] - result["ann_accuracy"]) <= 0.02
    assert result["saturation"]["accuracy"]["saturated"]


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_aec_best_window_is_within_three_points_of_the_ann(converted, sparsity):
    result = converted["aec", sparsity]
    assert result["time_mode"] == "window" and result["saturation"] is None
    assert result["windows"]["t"] == [2, 4, 8, 16, 32, 64]
    assert abs(result["chosen"]["accuracy"] - result["ann_accuracy"]) <= 0.03
    per_step = result["per_step"]
    filled = [t for t, a in zip(per_step["t"], per_step["accuracy"]) if a is not None]
    assert filled == result["windows"]["t"]
    assert all(per_step[k][2] is None for k in ("accuracy", "masfr", "mac", "ac", "energy_uj"))  # t = 3
    assert per_step["mac"][63] == 0 and set(result["roles"].values()) == {"ac"}


def test_sparse_networks_spend_less_energy_with_every_method(converted, digits_runs):
    for method in ("snm", "aec"):
        dense, sparse = converted[method, 0.0], converted[method, 0.9]
        assert sparse["per_step"]["energy_uj"][63] < 0.25 * dense["per_step"]["energy_uj"][63]
