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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import atomic_path, check_writable, make_temp_dir, read_json, write_json_atomic
from ..models import build_model
from ..topology import SYNAPTIC_TYPES, attach_masks, masks_from_state_dict
from ..typecheck import check_options
from .result import RESULT_FILE

CHECKPOINT_FORMAT = "sparse-convert/ann"
#: What a sidecar must hold to name the architecture of its checkpoint, and the types.
SIDECAR_FIELDS: dict[str, Any] = {"model": str, "num_classes": int, "in_shape": list[int], "model_options": dict}
STAGE_MARK = ".partial-"  # staging folders are .<out name>.partial-<random>


def check_run_output(out: str | os.PathLike, *, force: bool = False) -> None:
    """Raise ``ValueError`` unless a run can be written into folder ``out``: a folder that can be created
    there, or an existing one without a finished run (``result.json``) unless ``force``. Call it before
    training; it creates nothing."""
    check_writable(out, "--out", folder=True)
    if (Path(out) / RESULT_FILE).is_file() and not force:
        raise ValueError(f"--out {out} holds a finished run ({RESULT_FILE}); pass --force to replace it")


@contextmanager
def staged_output(out: str | os.PathLike, last: str = RESULT_FILE) -> Iterator[Path]:
    """Yield a staging folder; on success move its files into ``out`` (``last``, ``result.json`` by default,
    last: a folder holding it is complete).

    On an exception the staging folder, and the parent folders this call created, are removed and
    ``out`` is left as it was. Onto a finished run, its ``last`` file goes first, so that ``out``
    is never a mix that looks complete. The staging folder is ``flock``-ed while it is in use, so
    that ``remove_stale_stages`` can tell a killed run's leftovers from a folder another process is
    still writing.
    """
    out = Path(out)
    created = [p for p in out.parents if not p.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = make_temp_dir(out.parent, f".{out.name}{STAGE_MARK}")
    held = _lock_folder(stage, wait=True)
    try:
        yield stage
        out.mkdir(parents=True, exist_ok=True)
        (out / last).unlink(missing_ok=True)
        files = sorted(stage.iterdir(), key=lambda p: p.name == last)
        for f in files:
            os.replace(f, out / f.name)
        created = []
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        os.close(held)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # no longer empty: someone else writes there too
                break


def _lock_folder(folder: Path, wait: bool) -> int | None:
    """An open descriptor of ``folder`` holding an exclusive ``flock`` (None when busy and not ``wait``)."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_stale_stages(out: str | os.PathLike) -> list[Path]:
    """Delete the staging folders ``.<name>.partial-*`` beside ``out`` that killed runs left behind.

    A folder whose lock another process holds is in use and stays. Returns the folders removed.
    """
    out = Path(out)
    removed = []
    for stage in sorted(out.parent.glob(f".{out.name}{STAGE_MARK}*")):
        try:
            fd = _lock_folder(stage, wait=False)
        except OSError:  # gone meanwhile, or not a folder
            continue
        if fd is None:
            continue
        try:
            shutil.rmtree(stage, ignore_errors=True)
            removed.append(stage)
        finally:
            os.close(fd)
    return removed


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


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON sidecar of checkpoint ``path`` (which must exist), checked to name an architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise FileNotFoundError(f"checkpoint {path} has no sidecar {sidecar} naming its architecture")
    meta = read_json(sidecar)
    if not isinstance(meta, dict):
        raise ValueError(f"{sidecar} is not a sparse-convert ANN sidecar: it holds a JSON {type(meta).__name__}, "
                         "not an object")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{sidecar} is not a sparse-convert ANN sidecar (format {meta.get('format')!r})")
    missing = [key for key in SIDECAR_FIELDS if key not in meta]
    if missing:
        raise ValueError(f"{sidecar} lacks {missing}, which name the architecture of checkpoint {path}")
    check_options(meta, SIDECAR_FIELDS, lambda key: f"{key} in {sidecar}")
    return meta


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model a checkpoint describes, attach its masks and load its weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_checkpoint_meta(path)
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
