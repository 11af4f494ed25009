"""Files: atomic writes (a crash leaves either the old file or the new one, never half of one), reads that
name the file in their errors, and checks that an output path can be written before any work starts.

Temporary files and folders are created with modes 0666 and 0777 less the user's umask, like any other
file the user creates (``tempfile.mkstemp`` would make them 0600, unreadable to the rest of a group).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_ATTEMPTS = 100


def _fresh(folder: Path, prefix: str, suffix: str, create: Callable[[Path], object]) -> Path:
    """``create(path)`` on a new random name ``folder/<prefix><hex><suffix>``, retrying on collisions."""
    for _ in range(_ATTEMPTS):
        path = folder / f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            create(path)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {folder}")


def make_temp_file(folder: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """Create a new empty file in ``folder`` (mode 0666 less the umask) and return its path."""
    return _fresh(Path(folder), prefix, suffix,
                  lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))


def make_temp_dir(folder: str | os.PathLike, prefix: str) -> Path:
    """Create a new empty folder in ``folder`` (mode 0777 less the umask) and return its path."""
    return _fresh(Path(folder), prefix, "", lambda p: os.mkdir(p, 0o777))


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(path.parent, f".{path.stem}.", f".tmp{path.suffix}")
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0666 less the umask
    try:
        yield tmp
        os.chmod(tmp, mode)  # a writer that made its own file (safetensors does, with 0600) gets the umask too
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN is refused)."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of file ``path``, naming it in the error when it is missing or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start}") from None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, naming it in the error when it is missing, not UTF-8 or not JSON (NaN and Infinity,
    which ``write_json_atomic`` never writes, included)."""
    text = read_text(path)
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def check_writable(path: str | os.PathLike, what: str, *, folder: bool) -> None:
    """Raise ``ValueError`` unless ``path`` can be created or replaced as a folder (``folder``) or a file.

    ``what`` names the path in the message (``"--out"``). The nearest existing ancestor must be a folder
    in which a file can be created; this is tried (a probe folder made and removed at once), since
    permission bits do not tell for root, read-only mounts or ``/sys``. Nothing is left behind.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        if folder and not path.is_dir():
            raise ValueError(f"{what} {path} exists and is not a folder")
        if not folder and path.is_dir():
            raise ValueError(f"{what} {path} is a folder; give a file name")
        if not folder and not path.is_file():
            raise ValueError(f"{what} {path} exists and is not a regular file")
    base = path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"{what} {path} cannot be created: {base} is not a folder")
    for place in (base, path) if path.is_dir() else (base,):
        try:
            os.rmdir(make_temp_dir(place, ".sparse-convert-probe-"))
        except OSError as err:
            raise ValueError(f"{what} {path} cannot be written: {place}: {err.strerror or err}") from None
