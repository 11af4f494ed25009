"""End to end: ``run`` on digits, its result.json, checkpoints, determinism and bad input."""

import json
import re

import pytest
import torch

from sparse_convert.cli import main
from sparse_convert.data import load_dataset
from sparse_convert.experiments import RunConfig, load_checkpoint, load_result, run
from sparse_convert.training import FitConfig, accuracy

pytestmark = pytest.mark.slow


def test_sparse_snn_at_t64_is_within_two_points_of_its_ann(digits_runs):
    for sparsity in (0.0, 0.9):
        result = digits_runs[sparsity][1]
        snn_64 = result["per_step"]["accuracy"][63]
        assert abs(snn_64 - result["ann_accuracy"]) <= 0.02
        assert abs(snn_64 - result["converted_ann_accuracy"]) <= 0.02


def test_sparse_energy_at_t64_is_at_most_a_quarter_of_dense(digits_runs):
    dense, sparse = digits_runs[0.0][1], digits_runs[0.9][1]
    assert sparse["density"]["network"] < 0.15
    assert sparse["per_step"]["energy_uj"][63] <= 0.25 * dense["per_step"]["energy_uj"][63]


def test_result_json_layout(digits_runs):
    folder, result = digits_runs[0.9]
    on_disk = load_result(folder)
    assert on_disk == json.loads(json.dumps(result))
    per_step = on_disk["per_step"]
    assert per_step["t"] == list(range(1, 65))
    for key in ("accuracy", "masfr", "mac", "ac", "energy_uj"):
        assert len(per_step[key]) == 64
    assert all(0 <= a <= 1 for a in per_step["accuracy"])
    assert all(b >= a for a, b in zip(per_step["mac"], per_step["mac"][1:]))  # summed over steps 1..t
    assert on_disk["config"]["sparsity"] == 0.9 and on_disk["config"]["method"] == "qcfs"
    assert set(on_disk["density"]["layers"]) == {"1", "3", "5", "7"}
    assert on_disk["density"]["layers"]["7"] == 1.0
    assert on_disk["roles"] == {"body.1": "mac", "body.3": "ac", "body.5": "ac", "body.7": "ac"}
    chosen = on_disk["chosen"]
    assert per_step["energy_uj"][chosen["t"] - 1] == chosen["energy_uj"]
    assert {p.name for p in folder.iterdir()} == {"result.json", "ann.safetensors", "ann.json"}


def test_checkpoint_round_trip_reproduces_the_ann(digits_runs):
    folder, result = digits_runs[0.9]
    model, meta = load_checkpoint(folder / "ann.safetensors")
    assert meta["model"] == "mlp" and meta["dataset"] == "digits"
    assert accuracy(model, load_dataset("digits").test) == result["ann_accuracy"]


def test_same_seed_twice_gives_identical_per_step_numbers(digits_runs, tmp_path):
    cfg = RunConfig(model="mlp", dataset="digits", method="qcfs", sparsity=0.9, t_max=64, seed=0)
    again = run(cfg, tmp_path / "again", progress=False)
    assert again["per_step"] == digits_runs[0.9][1]["per_step"]


def test_loading_the_ann_skips_training_and_gives_the_same_curves(digits_runs, tmp_path):
    folder, result = digits_runs[0.9]
    code = main(["run", "--sparsity", "0.9", "--ann", str(folder / "ann.safetensors"), "--quiet",
                 "--out", str(tmp_path / "reuse")])
    assert code == 0
    reused = load_result(tmp_path / "reuse")
    assert reused["per_step"] == result["per_step"]
    assert reused["topology"]["rule"] == "checkpoint"


BAD_ARGS = [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--method", "magic"], "unknown method 'magic'"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
    (["--t-max", "0"], "t_max must be an integer >= 1"),
    (["--t-max", "-3"], "t_max must be an integer >= 1"),
    (["--sparsity", "1.0"], r"sparsity must be in \[0, 1\)"),
    (["--sparsity", "-0.2"], r"sparsity must be in \[0, 1\)"),
    (["--sparsity", "nan"], r"sparsity must be in \[0, 1\)"),
    (["--e-mac-pj", "nan"], "e_mac_pj must be a finite number"),
    (["--dataset", "cifar10"], "needs --data-root"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "cifar10 not found under /nonexistent/cifar"),
    (["--method-opt", "levels=0"], "levels"),
    (["--method-opt", "colour=red"], "unknown options"),
]


@pytest.mark.parametrize("args,message", BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_input_is_a_clear_error_with_no_partial_output(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "--quiet", "--epochs", "1", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def _checkpoint_copy(digits_runs, tmp_path):
    folder, _ = digits_runs[0.9]
    for name in ("ann.safetensors", "ann.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    return tmp_path / "ann.safetensors"


def test_checkpoint_whose_masks_do_not_fit_the_model(digits_runs, tmp_path, capsys):
    path = _checkpoint_copy(digits_runs, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["model_options"] = {"hidden": [128, 128, 128]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    code = main(["run", "--quiet", "--ann", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "mask of '1' has shape (256, 64)" in err and "(128, 64)" in err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_safetensors(digits_runs, tmp_path, capsys):
    path = _checkpoint_copy(digits_runs, tmp_path)
    path.write_bytes(b"\x80\x04 this is a pickle, not safetensors")
    code = main(["run", "--quiet", "--ann", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "is not a safetensors file" in err
    assert not (tmp_path / "out").exists()


def test_nan_in_training_input_is_refused():
    from torch.utils.data import TensorDataset

    from sparse_convert.models import build_model
    from sparse_convert.training import FitConfig, fit

    data = TensorDataset(torch.tensor([[1.0, float("nan")]] * 4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        fit(build_model("mlp", 2, (2,), hidden=[4]), data, FitConfig(epochs=1), progress=False)


CONTRADICTIONS = [
    (["--model-opt", "hidden=[64]"], r"model_options: \{'hidden': \[64\]\} vs \{\}"),
    (["--model", "vgg16"], "model: 'vgg16' vs 'mlp'"),
    (["--sparsity", "0.5"], "sparsity: 0.5 vs 0.9"),
    (["--epochs", "3"], "train: "),
    (["--seed", "7"], "seed: 7 vs 0"),
    (["--topology", "cht"], "topology: 'cht' vs 'static'"),
]


@pytest.mark.parametrize("args,message", CONTRADICTIONS, ids=[" ".join(a) for a, _ in CONTRADICTIONS])
def test_flags_that_contradict_the_checkpoint_are_refused_before_anything_runs(digits_runs, tmp_path, capsys,
                                                                               args, message):
    path = digits_runs[0.9][0] / "ann.safetensors"
    code = main(["run", "--quiet", "--ann", str(path), "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2 and "contradicts checkpoint" in err and re.search(message, err), err
    assert [p.name for p in tmp_path.iterdir()] == []


def test_with_ann_the_anns_flags_default_to_the_checkpoint_and_the_result_records_them(digits_runs, tmp_path):
    folder, trained = digits_runs[0.9]
    assert main(["run", "--quiet", "--ann", str(folder / "ann.safetensors"), "--method", "snm", "--t-max", "4",
                 "--out", str(tmp_path / "snm")]) == 0
    config = load_result(tmp_path / "snm")["config"]
    assert config["sparsity"] == 0.9 and config["train"] == trained["config"]["train"]
    assert config["method"] == "snm" and config["t_max"] == 4 and config["method_options"] == {}
    # the checkpoint this run wrote is as loadable as the one it read
    assert main(["run", "--quiet", "--ann", str(tmp_path / "snm" / "ann.safetensors"), "--t-max", "2",
                 "--out", str(tmp_path / "again")]) == 0


def test_a_rerun_removes_a_killed_runs_staging_folder_but_not_one_in_use(tmp_path):
    import fcntl
    import os

    out = tmp_path / "out"
    stale, busy = tmp_path / ".out.partial-killed", tmp_path / ".out.partial-inuse"
    for folder in (stale, busy):
        folder.mkdir()
        (folder / "ann.safetensors").write_bytes(b"half")
    held = os.open(busy, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # as staged_output holds its folder while writing
    try:
        cfg = RunConfig(t_max=2, train=FitConfig(epochs=1), model_options={"hidden": [8]})
        run(cfg, out, progress=False)
    finally:
        os.close(held)
    assert not stale.exists() and busy.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-inuse", "out"]


def test_a_named_energy_model_prices_the_counts_and_is_recorded(tmp_path):
    from sparse_convert.energy import energy_model

    cfg = RunConfig(t_max=4, train=FitConfig(epochs=1), model_options={"hidden": [8]}, energy_model="loihi",
                    neurobench=True)
    result = run(cfg, progress=False)
    loihi = energy_model("loihi")
    assert result["energy_model"]["name"] == "loihi" and result["config"]["e_ac_pj"] == loihi.e_ac_pj
    for mac, ac, uj in zip(result["per_step"]["mac"], result["per_step"]["ac"], result["per_step"]["energy_uj"]):
        assert uj == pytest.approx((mac * loihi.e_mac_pj + ac * loihi.e_ac_pj) / 1e6, rel=1e-12)
    block = result["neurobench"]
    assert block["chosen_t"] == result["chosen"]["t"] and block["t_max"] == 4
    assert set(block["at_t_max"]["synaptic_operations"]) == {"Effective_MACs", "Effective_ACs", "Dense"}
    with pytest.raises(ValueError, match="not both"):
        RunConfig(energy_model="loihi", e_ac_pj=3.0)


def test_configs_without_the_newer_fields_keep_their_identity():
    config = RunConfig().to_dict()
    older = {k: v for k, v in config.items() if k not in ("energy_model", "neurobench")}
    assert RunConfig().identity() == RunConfig.identity_of(config) == RunConfig.identity_of(older)
    assert RunConfig.identity_of(dict(config, energy_model="loihi")) != RunConfig.identity_of(older)
    assert RunConfig(device="cuda:1", chunk=3).identity() == RunConfig().identity()  # placement is not identity
