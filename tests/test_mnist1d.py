"""MNIST-1D: generated (never downloaded), the same arrays and splits on every machine, and usable wherever
digits is: RunConfig without a data root, `run`, the sweep file's dry run."""

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sparse_convert.cli import main
from sparse_convert.data import BUNDLED_DATASETS, load_dataset, mnist1d_arrays, needs_data_root
from sparse_convert.experiments import RunConfig
from sparse_convert.experiments.sweep import load_sweep
from sparse_convert.models import build_model

ROOT = Path(__file__).resolve().parents[1]

#: SHA-256 of each split's float32 signals then int64 labels, as mnist1d 0.0.2.post1 makes them.
SPLIT_SHA256 = {
    "train": "6f33c35918cf8a054eb0eca584a0460c2dc99ce69516c54bec449a92fc258221",
    "val": "049316e371c5b0591ff0e78e216b20565b9882d1a756cbc19a2b402032db2bb1",
    "test": "9ae88dc1b0a618748cf5c06c588bc097f5a63f6121293575dd91e840501efd5f",
}


def _sha256(split) -> str:
    x, y = split.tensors
    return hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()


def test_shapes_classes_and_the_generators_scaling():
    data = load_dataset("mnist1d")
    assert data.num_classes == 10 and data.in_shape == (1, 40)
    assert (len(data.train), len(data.val), len(data.test)) == (3500, 500, 1000)
    for split in (data.train, data.val, data.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 40) and y.dtype == torch.int64
        assert set(y.tolist()) == set(range(10))
    everything = torch.cat([data.train.tensors[0], data.val.tensors[0], data.test.tensors[0]])
    assert abs(float(everything.mean())) < 1e-3 and float(everything.std()) == pytest.approx(1.0, abs=2e-3)


def test_the_validation_split_is_stratified_and_disjoint_from_train():
    data = load_dataset("mnist1d")
    val_counts = torch.bincount(data.val.tensors[1], minlength=10)
    train_counts = torch.bincount(data.train.tensors[1], minlength=10)
    assert int(val_counts.min()) >= 49 and int(val_counts.max()) <= 51  # 50 per class, rounding aside
    full = torch.from_numpy(mnist1d_arrays()["y"])
    assert torch.equal(val_counts + train_counts, torch.bincount(full, minlength=10))
    train_rows = {tuple(r.tolist()) for r in data.train.tensors[0].flatten(1)}
    assert not any(tuple(r.tolist()) in train_rows for r in data.val.tensors[0].flatten(1))


def test_every_machine_gets_the_same_arrays_and_splits():
    data = load_dataset("mnist1d")
    assert {name: _sha256(getattr(data, name)) for name in SPLIT_SHA256} == SPLIT_SHA256
    assert _sha256(load_dataset("mnist1d").test) == SPLIT_SHA256["test"]  # and again in the same process


def test_generating_leaves_the_global_random_states_alone(monkeypatch):
    from sparse_convert.data import _mnist1d_generated

    monkeypatch.setenv("SPARSE_CONVERT_CACHE", "")  # no file cache either: the generator must run
    _mnist1d_generated.cache_clear()
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    mnist1d_arrays()
    assert _mnist1d_generated.cache_info().misses == 1
    assert (np.random.random(), random.random()) == (expected_np, expected_py)


def test_the_generated_arrays_are_cached_on_disk_and_a_damaged_cache_is_replaced(tmp_path, monkeypatch):
    from sparse_convert.data import MNIST1D_SHA256, _mnist1d_generated, arrays_sha256, mnist1d_cache_path

    monkeypatch.setenv("SPARSE_CONVERT_CACHE", str(tmp_path))
    cache = mnist1d_cache_path()
    assert cache.parent == tmp_path and not cache.exists()
    first = mnist1d_arrays()
    assert cache.is_file() and arrays_sha256(first) == MNIST1D_SHA256
    _mnist1d_generated.cache_clear()
    assert arrays_sha256(mnist1d_arrays()) == MNIST1D_SHA256 and _mnist1d_generated.cache_info().misses == 0
    cache.write_bytes(b"not an npz file")
    assert arrays_sha256(mnist1d_arrays()) == MNIST1D_SHA256 and cache.read_bytes()[:2] == b"PK"
    monkeypatch.setenv("SPARSE_CONVERT_CACHE", "")
    assert mnist1d_cache_path() is None and arrays_sha256(mnist1d_arrays()) == MNIST1D_SHA256


def test_it_needs_no_data_root_and_image_models_refuse_it_clearly():
    assert set(BUNDLED_DATASETS) == {"digits", "mnist1d"} and not needs_data_root("mnist1d")
    assert needs_data_root("cifar10") and needs_data_root("imagenet")
    RunConfig(dataset="mnist1d")  # no --data-root needed
    with pytest.raises(ValueError, match="needs --data-root"):
        RunConfig(dataset="cifar10")
    with pytest.raises(ValueError, match=r"vgg16 takes images \(C, H, W\).*use mlp"):
        build_model("vgg16", 10, (1, 40))
    with pytest.raises(ValueError, match="cannot be resized"):
        load_dataset("mnist1d", image_size=32)


def test_the_mlp_defaults_to_three_hidden_layers_of_1000_on_signals():
    widths = [m.out_features for m in build_model("mlp", 10, (1, 40)) if isinstance(m, torch.nn.Linear)]
    assert widths == [1000, 1000, 1000, 10]
    digits = [m.out_features for m in build_model("mlp", 10, (1, 8, 8)) if isinstance(m, torch.nn.Linear)]
    assert digits == [256, 256, 256, 10]


@pytest.mark.slow
def test_run_on_mnist1d_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--dataset", "mnist1d", "--model-opt", "hidden=[32,32,32]", "--epochs", "2",
                 "--sparsity", "0.9", "--topology", "set", "--method", "snm", "--t-max", "24", "--quiet",
                 "--out", str(out)])
    assert code == 0 and "ANN accuracy" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["dataset"] == "mnist1d" and result["config"]["data_root"] is None
    assert result["images"] == 1000 and result["neurons"] == 96
    layers = result["per_layer"]
    assert [(v["depth"], v["neurons"]) for v in layers.values()] == [(1, 32), (2, 32), (3, 32)]
    assert all(len(v["masfr"]) == 24 for v in layers.values())
    assert list(result["saturation"]["layers"]) == list(layers)


def test_the_mnist1d_sweep_file_dry_runs(tmp_path, capsys):
    toml = ROOT / "examples" / "mnist1d.toml"
    configs = load_sweep(toml)
    assert {c.dataset for c in configs} == {"mnist1d"} and {c.method for c in configs} == {"qcfs", "snm", "aec",
                                                                                           "spikezip"}
    assert {c.sparsity for c in configs} == {0.0, 0.9, 0.99}
    assert {c.topology for c in configs if c.sparsity} == {"cht", "static", "set", "rigl"}
    assert len({c.seed for c in configs}) >= 3 and len({c.train.lr for c in configs}) >= 2
    assert main(["sweep", str(toml), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    anns = len({json.dumps(c.ann_stage(), sort_keys=True) for c in configs})
    assert last == f"{len(configs)} configurations: {anns} ANN trainings, {len(configs)} conversions"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_mlp_example_accepts_mnist1d(tmp_path):
    import subprocess
    import sys

    from sweep_fixtures import cli_env

    out = tmp_path / "mlp"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "mlp_cifar.py"), "--dataset", "mnist1d",
                           "--epochs", "1", "--method-epochs", "0", "--t-max", "4", "--out", str(out)],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| mnist1d | mlp | qcfs | cht | 0.9 |" in proc.stdout and (out / "report.md").is_file()
