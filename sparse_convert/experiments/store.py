"""Files a run leaves behind, written so that a crash never leaves a half-written one.

* JSON is written to a temporary file in the same folder and renamed over the target.
* A run writes into a staging folder beside ``--out`` and moves its files in at the end,
  ``result.json`` last: a folder with ``result.json`` holds a complete run.
* ANN checkpoints are safetensors (weights, masks as ``*.weight_mask``) plus a JSON
  sidecar naming the architecture; loading never unpickles anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import atomic_path, read_json, write_json_atomic
from ..models import build_model
from ..topology import SYNAPTIC_TYPES, attach_masks, masks_from_state_dict

RESULT_FILE = "result.json"
CHECKPOINT_FORMAT = "sparse-convert/ann"


@contextmanager
def staged_output(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out`` (``result.json`` last).

    On an exception the staging folder is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        files = sorted(stage.iterdir(), key=lambda p: p.name == RESULT_FILE)
        for f in files:
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def save_checkpoint(model: nn.Module, path: str | os.PathLike, meta: dict[str, Any]) -> Path:
    """Save ``model``'s state (masks included) to ``path`` (.safetensors) and ``meta`` to a .json sidecar.

    ``meta`` must name the architecture: ``model``, ``num_classes``, ``in_shape``, ``model_options``.
    """
    from safetensors.torch import save_file

    missing = [k for k in ("model", "num_classes", "in_shape", "model_options") if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    path = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    write_json_atomic(path.with_suffix(".json"), {"format": CHECKPOINT_FORMAT, "version": 1, **meta})
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, attach its masks and load its weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"checkpoint {path} has no sidecar {sidecar} naming its architecture")
    meta = read_json(sidecar)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{sidecar} is not a sparse-convert ANN sidecar (format {meta.get('format')!r})")
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a safetensors file: {err}") from None
    model = build_model(meta["model"], meta["num_classes"], tuple(meta["in_shape"]), **meta["model_options"])
    masks = masks_from_state_dict(state)
    layers = dict(model.named_modules())
    for name, mask in masks.items():
        layer = layers.get(name)
        if not isinstance(layer, SYNAPTIC_TYPES):
            raise ValueError(f"checkpoint {path} has a mask for {name!r}, which is not a Linear/Conv2d "
                             f"layer of {meta['model']}")
        if tuple(mask.shape) != tuple(layer.weight.shape):
            raise ValueError(f"checkpoint {path}: mask of {name!r} has shape {tuple(mask.shape)} but the "
                             f"model's weight has shape {tuple(layer.weight.shape)}")
    attach_masks(model, masks)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"checkpoint {path} does not fit {meta['model']}: {err}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"checkpoint {path} does not fit {meta['model']}: missing {result.missing_keys}, "
                         f"unexpected {result.unexpected_keys}")
    return model.to(device), meta
