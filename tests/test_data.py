"""Datasets: the bundled digits, and CIFAR / ImageNet read from files in their real on-disk formats."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from sparse_convert.data import load_dataset


def test_digits_fixed_stratified_split_in_unit_range():
    a = load_dataset("digits")
    b = load_dataset("digits")
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == 450
    assert a.num_classes == 10 and a.in_shape == (1, 8, 8)
    for split in (a.train, a.val, a.test):
        x, y = split.tensors
        assert x.min() >= 0 and x.max() <= 1
        counts = torch.bincount(y, minlength=10).float()
        assert (counts / counts.sum() - 0.1).abs().max() < 0.02  # every class ~10 % in every split
    assert torch.equal(a.test.tensors[0], b.test.tensors[0])
    train_rows = {tuple(r.tolist()) for r in a.train.tensors[0].flatten(1)}
    assert not any(tuple(r.tolist()) in train_rows for r in a.test.tensors[0].flatten(1)[:50])


def test_digits_resized_for_vgg():
    data = load_dataset("digits", image_size=32)
    assert data.in_shape == (1, 32, 32)
    assert data.train[0][0].shape == (1, 32, 32)


def _write_cifar10(root, per_batch=20, test=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n, offset):
        labels = [(i + offset) % 10 for i in range(n)]
        return {"batch_label": "batch", "labels": labels,
                "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                "filenames": [f"img{i}.png" for i in range(n)]}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_batch, i), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(test, 0), f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)], "num_cases_per_batch": per_batch}, f,
                    protocol=2)


def test_cifar10_reads_the_real_pickle_format(tmp_path):
    _write_cifar10(tmp_path)
    with pytest.warns(UserWarning, match="not the published cifar10 files .MD5 differs.; reading them anyway"):
        data = load_dataset("cifar10", root=tmp_path)
    assert data.num_classes == 10 and data.in_shape == (3, 32, 32)
    assert len(data.train) + len(data.val) == 100 and len(data.test) == 30
    x, y = data.test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    x_aug, _ = data.train[0]
    assert x_aug.shape == (3, 32, 32)


def test_cifar100_reads_the_real_pickle_format(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, n in (("train", 400), ("test", 50)):
        with open(folder / name, "wb") as f:
            pickle.dump({"fine_labels": [i % 100 for i in range(n)], "coarse_labels": [i % 20 for i in range(n)],
                         "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)],
                     "coarse_label_names": [f"s{i}" for i in range(20)]}, f, protocol=2)
    with pytest.warns(UserWarning, match="meta, test, train are not the published cifar100 files"):
        data = load_dataset("cifar100", root=tmp_path)
    assert data.num_classes == 100 and len(data.test) == 50


def test_missing_cifar_names_the_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*data_batch_1.*--download"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(ValueError, match="data root"):
        load_dataset("cifar10")


def test_imagenet_image_folder_with_real_jpegs(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("n01440764", "n01443537"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (37 + i, 53, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{cls}_{i}.JPEG", format="JPEG")
    data = load_dataset("imagenet", root=tmp_path)
    assert data.num_classes == 2 and data.in_shape == (3, 224, 224)
    x, y = data.test[0]
    assert x.shape == (3, 224, 224) and y in (0, 1)
    assert len(data.train) + len(data.val) == 8 and len(data.test) == 4


def test_missing_imagenet_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train/, val/.*<class>/\*\.JPEG"):
        load_dataset("imagenet", root=tmp_path)


def test_unknown_dataset_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*digits"):
        load_dataset("mnist")
