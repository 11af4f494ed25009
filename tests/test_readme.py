"""The README is the front door: its commands are what CI runs, and its examples run."""

import re
from pathlib import Path

import pytest

from sparse_convert.cli import main
from sparse_convert.methods import available_methods

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_command(number: int) -> str:
    """The bash command under the README's "**<number>." quick-start item."""
    section = README.split(f"**{number}.", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[-1] == readme_command(2)
    assert all(line.startswith(("set ", "cd ")) for line in lines[:-1])


def test_readme_demo_command_runs_the_demo():
    assert readme_command(1).endswith("sparse-convert demo --out demo")


@pytest.mark.slow
def test_readme_python_api_example_runs():
    code = re.search(r"## Python API\n\n```python\n(.+?)\n```", README, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["curves"].t[-1] == 64


@pytest.mark.slow
def test_demo_writes_table_and_figure(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    for name in ("table.md", "table.csv", "accuracy_vs_t.png", "accuracy_vs_t.pdf"):
        assert (tmp_path / name).stat().st_size > 0
    rows = (tmp_path / "table.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 * len(available_methods())
    assert "energy_reduction_pct" in capsys.readouterr().out
