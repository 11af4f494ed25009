"""Experiments: run configuration, the runner, result storage and the digits demo."""

from .config import RunConfig
from .runner import load_result, run
from .store import load_checkpoint, save_checkpoint

__all__ = ["RunConfig", "load_checkpoint", "load_result", "run", "save_checkpoint"]
