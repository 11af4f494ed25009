"""Experiments: run configuration, the runner, dense-vs-sparse pairs, result storage and the digits demo."""

from .config import RunConfig
from .pairs import run_dense_and_sparse, run_or_load
from .result import AnnResult, RunResult
from .runner import load_result, run
from .store import load_checkpoint, save_checkpoint

__all__ = ["AnnResult", "RunConfig", "RunResult", "load_checkpoint", "load_result", "run", "run_dense_and_sparse",
           "run_or_load", "save_checkpoint"]
