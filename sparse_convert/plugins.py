"""Plugins: user modules imported before a command runs, in the CLI and in every sweep worker.

A plugin is any importable module (``my_lab.methods``) or a Python file (``path/to/methods.py``)
that registers methods, neurons, models, topologies or datasets with the registries when
imported. ``sparse-convert --plugin NAME ...`` (repeatable) or the environment variable
``SPARSE_CONVERT_PLUGINS`` (names separated by commas) names them. The CLI puts the names it
was given into that variable, so the worker processes of a sweep (local or Ray Tune on one
machine) import the same plugins before they run a configuration. On a Ray cluster, set the
variable in the cluster's environment as well.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

ENV_VAR = "SPARSE_CONVERT_PLUGINS"


def plugin_names(extra: Iterable[str] = ()) -> list[str]:
    """The plugins named by ``SPARSE_CONVERT_PLUGINS`` followed by ``extra``, each once, in order."""
    names = [n.strip() for n in os.environ.get(ENV_VAR, "").split(",") if n.strip()]
    return list(dict.fromkeys([*names, *extra]))


def _import_file(path: Path) -> ModuleType:
    name = f"sparse_convert_plugin_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"plugin {path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_plugins(extra: Iterable[str] = (), export: bool = False) -> list[ModuleType]:
    """Import every plugin (see module doc); with ``export``, write their names to ``SPARSE_CONVERT_PLUGINS``
    so that processes started afterwards import them too. A plugin that does not exist is a ``ValueError``;
    errors raised while a plugin runs propagate with their traceback."""
    names = plugin_names(extra)
    modules = []
    for name in names:
        if name.endswith(".py") or os.sep in name:
            path = Path(name).resolve()
            if not path.is_file():
                raise ValueError(f"plugin file {name} does not exist")
            modules.append(_import_file(path))
            continue
        if importlib.util.find_spec(name.split(".")[0]) is None:
            raise ValueError(f"plugin module {name!r} cannot be found (not installed, or not on PYTHONPATH)")
        modules.append(importlib.import_module(name))
    if export and names:
        os.environ[ENV_VAR] = ",".join(str(Path(n).resolve()) if n.endswith(".py") else n for n in names)
    return modules
