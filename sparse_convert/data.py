"""Datasets: ``digits`` (bundled with scikit-learn, the default), CIFAR-10/100 and ImageNet.

``load_dataset(name, ...)`` returns train / validation / test splits. Model selection
must use ``val``; ``test`` is only for reporting. Nothing is downloaded unless
``download=True``; a missing dataset raises ``FileNotFoundError`` naming the path and
the layout expected there.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

#: Seed of the fixed train / validation / test splits (independent of the run's seed).
SPLIT_SEED = 0
#: Fraction of the digits set held out for testing, and of the rest for validation.
DIGITS_TEST_FRACTION = 0.25
DIGITS_VAL_FRACTION = 0.15
#: Training images held out for validation from CIFAR and ImageNet training sets.
CIFAR_VAL_SIZE = 5000
IMAGENET_VAL_FRACTION = 0.01

#: Classes, label key and file description of each CIFAR version's python-pickle files.
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
CIFAR_FORMAT = {"cifar10": ("labels", "CIFAR-10 batch"), "cifar100": ("fine_labels", "CIFAR-100 batch")}
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class DataSplits:
    """Train, validation and test sets of one dataset, with what a model needs to know of them."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_shape: tuple[int, int, int]


def available_datasets() -> list[str]:
    """Names ``load_dataset`` accepts."""
    return sorted(_LOADERS)


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int | None = None,
    augment: bool = True,
    model: torch.nn.Module | None = None,
) -> DataSplits:
    """Load dataset ``name``; ``image_size`` resizes (digits → 32 for VGG-16), ``model`` gives timm transforms."""
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    return _LOADERS[name](root=root, download=download, image_size=image_size, augment=augment, model=model)


def _split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``range(len(labels))`` into (keep, held_out) with ``fraction`` held out."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    keep, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(keep), np.sort(held)


def _digits(*, root, download, image_size, augment, model) -> DataSplits:
    """The 1797 8x8 digit images shipped inside scikit-learn, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    if image_size is not None and image_size != 8:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                            align_corners=False).clamp_(0.0, 1.0)
    labels = bunch.target
    rest, test = _split_indices(labels, DIGITS_TEST_FRACTION, SPLIT_SEED)
    train_rel, val_rel = _split_indices(labels[rest], DIGITS_VAL_FRACTION, SPLIT_SEED)
    train, val = rest[train_rel], rest[val_rel]

    def part(ix: np.ndarray) -> TensorDataset:
        ix = torch.as_tensor(ix)
        return TensorDataset(x[ix], y[ix])

    return DataSplits("digits", part(train), part(val), part(test), 10, tuple(x.shape[1:]))


def _md5(path: Path) -> str:
    """Hex MD5 digest of a file's bytes."""
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _md5_matches(path: str, size: int, mtime_ns: int, md5: str) -> bool:
    """Whether file ``path`` (of this size and mtime) has digest ``md5``; computed once per file version."""
    return _md5(Path(path)) == md5


def read_cifar_file(path: Path, md5: str, keys: tuple[str, ...], what: str) -> tuple[dict, bool]:
    """Unpickle one file of a CIFAR python-version archive (``what``: "CIFAR-10 batch", ...), naming it in errors;
    returns the dict and whether the file is the published one (its MD5 is ``md5``).

    A file that is not the published one (a subset, a re-made copy, a test fixture) is read all the same (the
    caller warns); one that does not unpickle into a dict holding ``keys`` (corrupt, truncated, another file)
    raises ``ValueError``.
    """
    import pickle

    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} is missing")
    stat = path.stat()
    published = _md5_matches(str(path), stat.st_size, stat.st_mtime_ns, md5)
    hint = "" if published else "; its MD5 is not the published one: replace it by the original (--download)"
    try:
        with open(path, "rb") as f:  # the dataset's own format is a Python pickle
            entry = pickle.load(f, encoding="latin1")
    except Exception as err:  # a damaged pickle fails in many ways (EOFError, UnpicklingError, ValueError, ...)
        raise ValueError(f"{path} is not a readable {what} file, corrupt or truncated "
                         f"({type(err).__name__}: {err}){hint}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"{path} is not a {what} file: it holds a {type(entry).__name__}, not a dict{hint}")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise ValueError(f"{path} is not a {what} file: it has no {', '.join(map(repr, missing))} entry{hint}")
    return entry, published


def _batch_arrays(path: Path, entry: dict, label_key: str, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """The images ``[N, 3072]`` (uint8) and labels of one CIFAR batch, checked."""
    x, y = np.asarray(entry["data"]), np.asarray(entry[label_key])
    if x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or x.dtype != np.uint8:
        raise ValueError(f"{path}: 'data' must be uint8 rows of 3072 pixels (3 x 32 x 32), "
                         f"got {x.dtype} of shape {x.shape}")
    if (y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer)
            or (len(y) and (y.min() < 0 or y.max() >= num_classes))):
        raise ValueError(f"{path}: {label_key!r} must hold {len(x)} class indices in [0, {num_classes}), "
                         f"got {y.dtype} of shape {y.shape}")
    return x, y.tolist()


def _cifar_class(name: str) -> type:
    import torchvision
    from torchvision.datasets.vision import VisionDataset

    base = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    label_key, what = CIFAR_FORMAT[name]

    class LocalCIFAR(base):  # type: ignore[misc, valid-type]
        """torchvision's CIFAR, reading each file through ``read_cifar_file``: a damaged file is an error
        naming it, a file that is not the published one (a subset, a re-pickled copy) a warning."""

        def __init__(self, root: str, train: bool = True, transform: Callable | None = None,
                     download: bool = False) -> None:
            VisionDataset.__init__(self, root, transform=transform)
            self.train = train
            if download:
                self.download()
            folder = Path(self.root) / self.base_folder
            images, self.targets, self.unpublished = [], [], []
            for file_name, md5 in self.train_list if train else self.test_list:
                path = folder / file_name
                entry, published = read_cifar_file(path, md5, ("data", label_key), what)
                x, y = _batch_arrays(path, entry, label_key, CIFAR_CLASSES[name])
                images.append(x)
                self.targets += y
                self.unpublished += [] if published else [file_name]
            self.data = np.concatenate(images).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))  # HWC
            self._load_meta()

        def _check_integrity(self) -> bool:  # "present": download() fetches (and MD5-checks) the archive if not
            folder = Path(self.root) / self.base_folder
            return all((folder / f).is_file() for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            key = self.meta["key"]
            entry, published = read_cifar_file(path, self.meta["md5"], (key,), f"{what.split()[0]} metadata")
            classes = entry[key]
            self.unpublished += [] if published else [path.name]
            if not isinstance(classes, list) or len(classes) != CIFAR_CLASSES[name]:
                raise ValueError(f"{path}: {key!r} must list {CIFAR_CLASSES[name]} class names, got {classes!r:.80}")
            self.classes = classes
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return LocalCIFAR


def _cifar(name: str) -> Callable[..., DataSplits]:
    def load(*, root, download, image_size, augment, model) -> DataSplits:
        from torchvision import transforms as T

        if root is None:
            raise ValueError(f"{name} needs a data root (--data-root DIR)")
        cls = _cifar_class(name)
        folder = Path(root) / cls.base_folder
        if not download:
            missing = [f for f, _ in cls.train_list + cls.test_list if not (folder / f).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{name} not found under {folder}: missing {', '.join(missing)}. Expected the "
                    f"python-version archive extracted there ({folder}/" + "{data_batch_1..5, test_batch} for "
                    "CIFAR-10, {train, test} for CIFAR-100, plus the meta file); pass --download to fetch it"
                )
        mean, std = CIFAR_STATS[name]
        size = image_size or 32
        resize = [T.Resize(size)] if size != 32 else []
        eval_tf = T.Compose([*resize, T.ToTensor(), T.Normalize(mean, std)])
        train_tf = eval_tf
        if augment:
            train_tf = T.Compose([*resize, T.RandomCrop(size, padding=size // 8), T.RandomHorizontalFlip(),
                                  T.ToTensor(), T.Normalize(mean, std)])
        train_full = cls(str(root), train=True, transform=train_tf, download=download)
        train_eval = cls(str(root), train=True, transform=eval_tf, download=False)
        test = cls(str(root), train=False, transform=eval_tf, download=False)
        unpublished = sorted(set(train_full.unpublished + test.unpublished))
        if unpublished:
            warnings.warn(f"{folder}: {', '.join(unpublished)} {'is' if len(unpublished) == 1 else 'are'} not the "
                          f"published {name} file{'s' * (len(unpublished) > 1)} (MD5 differs); reading "
                          f"{'it' if len(unpublished) == 1 else 'them'} anyway", stacklevel=2)
        labels = np.asarray(train_full.targets)
        num_classes = len(train_full.classes)
        n_val = max(num_classes, min(CIFAR_VAL_SIZE, len(labels) // 10))  # a stratified split needs >= 1 per class
        train_idx, val_idx = _split_indices(labels, n_val / len(labels), SPLIT_SEED)
        return DataSplits(name, Subset(train_full, train_idx), Subset(train_eval, val_idx), test,
                          num_classes, (3, size, size))

    return load


def _imagenet(*, root, download, image_size, augment, model) -> DataSplits:
    """ImageNet-1K as ``ImageFolder`` trees ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG``."""
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    if root is None:
        raise ValueError("imagenet needs a data root (--data-root DIR)")
    if download:
        raise ValueError("ImageNet cannot be downloaded automatically; place it under --data-root")
    missing = [s for s in ("train", "val") if not (Path(root) / s).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"imagenet not found under {root}: missing {', '.join(m + '/' for m in missing)}. Expected "
            f"{root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG (val sorted into class folders)"
        )
    args = {} if image_size is None else {"input_size": (3, image_size, image_size)}
    if model is None:
        args.setdefault("input_size", (3, 224, 224))  # timm's default ImageNet preprocessing
    cfg = resolve_data_config(args, model=model)
    train_tf = create_transform(**cfg, is_training=augment)
    eval_tf = create_transform(**cfg, is_training=False)
    train_full = ImageFolder(str(Path(root) / "train"), transform=train_tf)
    train_eval = ImageFolder(str(Path(root) / "train"), transform=eval_tf)
    test = ImageFolder(str(Path(root) / "val"), transform=eval_tf)
    if train_full.classes != test.classes:
        raise ValueError(f"imagenet train/ and val/ under {root} have different class folders")
    labels = np.asarray(train_full.targets)
    per_class = np.bincount(labels)
    if per_class.min() < 2:
        train_idx, val_idx = np.arange(len(labels)), np.arange(0)
    else:
        n_val = max(len(per_class), round(IMAGENET_VAL_FRACTION * len(labels)))
        train_idx, val_idx = _split_indices(labels, n_val / len(labels), SPLIT_SEED)
    return DataSplits("imagenet", Subset(train_full, train_idx), Subset(train_eval, val_idx), test,
                      len(train_full.classes), tuple(cfg["input_size"]))


_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "digits": _digits,
    "cifar10": _cifar("cifar10"),
    "cifar100": _cifar("cifar100"),
    "imagenet": _imagenet,
}
