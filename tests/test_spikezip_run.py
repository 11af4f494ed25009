"""``sparse-convert run --model vit_tiny --dataset digits --sparsity 0.7 --method spikezip`` end to end."""

import json

import pytest

from sparse_convert.cli import main


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    """The acceptance command, shortened (fewer epochs, L = 8, 40 steps); returns result.json."""
    out = tmp_path_factory.mktemp("vit") / "run"
    code = main(["run", "--model", "vit_tiny", "--dataset", "digits", "--sparsity", "0.7", "--method", "spikezip",
                 "--epochs", "4", "--method-opt", "epochs=2", "--method-opt", "levels=8", "--t-max", "40",
                 "--out", str(out), "--quiet"])
    assert code == 0
    return json.loads((out / "result.json").read_text())


def test_snn_accuracy_at_t_max_equals_the_qann_accuracy(vit_run):
    per_step = vit_run["per_step"]
    assert per_step["t"] == list(range(1, 41))
    assert per_step["accuracy"][-1] == vit_run["converted_ann_accuracy"]
    assert vit_run["converted_ann_accuracy"] > 0.3  # a trained network, not chance (0.1)


def test_result_has_accuracy_masfr_and_energy_for_every_step_and_operation_counts_apart(vit_run):
    per_step = vit_run["per_step"]
    for key in ("accuracy", "masfr", "mac", "ac", "energy_uj", "softmax_ops", "layernorm_ops"):
        assert len(per_step[key]) == 40, key
    assert per_step["energy_uj"] == sorted(per_step["energy_uj"]) and per_step["energy_uj"][0] > 0
    for t in (0, 39):
        assert per_step["energy_uj"][t] == pytest.approx((4.6 * per_step["mac"][t] + 0.9 * per_step["ac"][t]) * 1e-6)
    roles = vit_run["roles"]
    assert roles["body.patch_embed.proj.0.0"] == "mac" and roles["body.blocks.1.attn.av.node"] == "ac"


def test_density_per_layer_is_seventy_percent_sparse_with_a_dense_classifier(vit_run):
    layers = vit_run["density"]["layers"]
    assert layers["head"] == 1.0 and layers["patch_embed.proj"] == 1.0  # the paper sparsifies linear layers
    assert len(layers) == 10
    for name, value in layers.items():
        if name not in ("head", "patch_embed.proj"):
            assert value == pytest.approx(0.3, abs=0.005), name
