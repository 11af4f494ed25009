"""The optional CuPy backend: availability checks (kernels arrive with each node's issue)."""

from __future__ import annotations

import importlib.util

import torch

INSTALL_HINT = "pip install 'sparse-convert[cupy]' (CuPy for CUDA 12; use the cupy wheel that matches your CUDA)"


def cupy_available() -> bool:
    """True when CuPy is importable and a CUDA device is present."""
    return importlib.util.find_spec("cupy") is not None and torch.cuda.is_available()


def require_cupy(who: str = "the cupy backend") -> None:
    """Raise ``RuntimeError`` saying what to install when CuPy or CUDA is missing."""
    if importlib.util.find_spec("cupy") is None:
        raise RuntimeError(f"{who}: backend 'cupy' needs CuPy, which is not installed: {INSTALL_HINT}")
    if not torch.cuda.is_available():
        raise RuntimeError(f"{who}: backend 'cupy' needs a CUDA GPU, and torch sees none; use backend='torch'")
