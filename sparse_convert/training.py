"""Supervised training and evaluation loops shared by ANN training and method fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

OPTIMIZERS = ("sgd", "adamw", "adam")


@dataclass
class FitConfig:
    """One training stage: optimizer, learning rate (cosine-annealed), epochs, batch size."""

    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 64
    weight_decay: float = 5e-4
    momentum: float = 0.9
    optimizer: str = "sgd"
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("weight_decay", "momentum"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {self.label_smoothing}")


def make_optimizer(params: Iterable[nn.Parameter], cfg: FitConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg`` names, over ``params``."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0,
                num_workers: int = 0) -> DataLoader:
    """A DataLoader whose shuffling depends only on ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=False)


def fit(
    model: nn.Module,
    train_set: Dataset,
    cfg: FitConfig,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    params: Iterable[nn.Parameter] | None = None,
    after_step: Callable[[], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "train",
    progress: bool = True,
) -> list[float]:
    """Train ``model`` with cross-entropy for ``cfg.epochs``; returns the mean loss per epoch.

    ``after_step`` runs after every optimizer step (a topology scheduler's ``step``).
    A non-finite loss stops training with ``FloatingPointError``.
    """
    device = torch.device(device)
    model.to(device)
    loader = make_loader(train_set, cfg.batch_size, shuffle=True, seed=seed)
    opt = optimizer or make_optimizer(model.parameters() if params is None else params, cfg)
    total = max(1, cfg.epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    history = []
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        model.train()
        running, seen = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if torch.isnan(x).any():
                raise ValueError(f"{desc}: input batch contains NaN")
            loss = loss_fn(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{desc}: loss became {loss.item()} (lower the learning rate?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step()
            running += loss.item() * len(y)
            seen += len(y)
        history.append(running / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: nn.Module, dataset: Dataset, *, batch_size: int = 256,
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``dataset``, a fraction in [0, 1]."""
    device = torch.device(device)
    model.to(device).eval()
    correct = total = 0
    for x, y in make_loader(dataset, batch_size, shuffle=False):
        pred = model(x.to(device)).argmax(-1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    if total == 0:
        raise ValueError("cannot measure accuracy on an empty dataset")
    return correct / total
