"""Plugins: a module named by --plugin (or SPARSE_CONVERT_PLUGINS) registers a method the CLI and sweeps use."""

import json
import os
import subprocess
import sys
from pathlib import Path

from sweep_fixtures import cli_env, sweep_command

from sparse_convert.cli import main
from sparse_convert.plugins import ENV_VAR, plugin_names

PLUGIN = '''
from sparse_convert.methods import register_method
from sparse_convert.methods.snm import SNM


@register_method
class PluginSNM(SNM):
    """SNM under another name: proves that a plugin's method reaches the runner."""

    name = "plugin_snm"
'''


def test_plugin_names_come_from_the_environment_then_the_flags(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "a, b,,a")
    assert plugin_names(["c", "b"]) == ["a", "b", "c"]


def test_a_missing_plugin_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert main(["--plugin", str(tmp_path / "nope.py"), "run", "--out", str(tmp_path / "o")]) == 2
    assert f"error: plugin file {tmp_path / 'nope.py'} does not exist" in capsys.readouterr().err
    assert main(["--plugin", "no_such_module_xyz", "run", "--out", str(tmp_path / "o")]) == 2
    assert "plugin module 'no_such_module_xyz' cannot be found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _plugin_cli(plugin: Path) -> tuple[dict[str, str], list[str]]:
    """The environment (without the plugin variable) and the CLI command that loads ``plugin``."""
    env = {k: v for k, v in cli_env().items() if k != ENV_VAR}
    return env, [sys.executable, "-m", "sparse_convert.cli", "--plugin", str(plugin)]


def _run_help(cli: list[str], env: dict[str, str]) -> str:
    """``run -h`` of ``cli``, which must succeed; its output."""
    shown = subprocess.run([*cli, "run", "-h"], env=env, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout


def test_a_plugin_method_runs_from_the_cli_and_in_sweep_workers(tmp_path):
    plugin = tmp_path / "my_methods.py"
    plugin.write_text(PLUGIN)
    env, cli = _plugin_cli(plugin)
    assert "plugin_snm" in _run_help(cli, env)
    toml = tmp_path / "s.toml"
    toml.write_text('[grid]\nmethod = ["plugin_snm"]\nt_max = [4]\n[grid.train]\nepochs = [1]\n'
                    '[grid.model_options.mlp]\nhidden = [[8]]\n')
    command = sweep_command(toml, tmp_path / "out", "--workers", "2")
    done = subprocess.run([*cli, *command[3:]], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = (tmp_path / "out" / "runs").glob("*/result.json")
    assert json.loads(result.read_text())["config"]["method"] == "plugin_snm"
    assert os.environ.get(ENV_VAR) is None  # the test process itself was not touched


def test_the_subclassing_guide_is_a_plugin_whose_method_the_cli_lists():
    guide = Path(__file__).resolve().parents[1] / "examples" / "custom_neuron.py"
    env, cli = _plugin_cli(guide)
    assert "qcfs_reset_to_zero" in _run_help(cli, env)
