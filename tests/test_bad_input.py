"""Bad input, through the command line: one line ``error: ...`` naming what is wrong (and the file), exit status
2, found before any training, and nothing left behind. ``CASES`` is the table; a new flag's bad values join it."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from synthetic_results import make_result
from test_data import _write_cifar10

from sparse_convert import training
from sparse_convert.cli import main
from sparse_convert.data import load_dataset
from sparse_convert.experiments import demo as demo_module
from sparse_convert.experiments import pairs as pairs_module
from sparse_convert.experiments import runner, sweep
from sparse_convert.experiments.store import save_checkpoint, staged_output
from sparse_convert.fileio import write_json_atomic
from sparse_convert.models import build_model

#: A run that trains in about a second when it runs at all.
TINY = ["--quiet", "--epochs", "1", "--model-opt", "hidden=[16]", "--t-max", "4"]


# -- fixtures written by the cases' setups ----------------------------------------------------------


def _file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a folder\n")


def _cifar(damage: Callable[[Path], None]) -> Callable[[Path], None]:
    """A CIFAR-10 tree in the real on-disk format under ``tmp/c10`` whose ``data_batch_1`` ``damage`` edits."""

    def setup(tmp: Path) -> None:
        _write_cifar10(tmp / "c10")
        damage(tmp / "c10" / "cifar-10-batches-py" / "data_batch_1")

    return setup


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"\x80\x02garbage that is no pickle" * 10)


def _drop_data_key(path: Path) -> None:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    del batch["data"]
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _checkpoint(edit: Callable[[dict], object] | None = None, raw: bytes | None = None) -> Callable[[Path], None]:
    """A real tiny ANN checkpoint ``tmp/ann.safetensors`` whose sidecar ``edit`` rewrites (or ``raw`` replaces)."""

    def setup(tmp: Path) -> None:
        model = build_model("mlp", 10, (1, 8, 8), hidden=[16])
        path = save_checkpoint(model, tmp / "ann", {"model": "mlp", "num_classes": 10, "in_shape": [1, 8, 8],
                                                    "model_options": {"hidden": [16]}, "dataset": "digits"})
        sidecar = path.with_suffix(".json")
        if raw is not None:
            sidecar.write_bytes(raw)
        elif edit is not None:
            sidecar.write_text(json.dumps(edit(json.loads(sidecar.read_text()))))

    return setup


def _without(key: str) -> Callable[[dict], dict]:
    return lambda meta: {k: v for k, v in meta.items() if k != key}


def _sweep_file(text: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "s.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def _results(*texts: str) -> Callable[[Path], None]:
    """Result files ``tmp/res/run<i>/result.json`` holding ``texts``."""

    def setup(tmp: Path) -> None:
        for i, text in enumerate(texts):
            folder = tmp / "res" / f"run{i}"
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(text)

    return setup


def _result_text(drop: str | None = None, edit: Callable[[dict], object] | None = None, **changes) -> str:
    """A synthetic result as JSON text, without key ``drop`` and after ``edit`` (NaN written as ``NaN``)."""
    result = make_result(**changes)
    result.pop(drop, None)
    if edit is not None:
        edit(result)
    return json.dumps(result)


def _finished_run(tmp: Path) -> None:
    (tmp / "done").mkdir()
    (tmp / "done" / "result.json").write_text(_result_text())


def _finished_demo_run(tmp: Path) -> None:
    """A demo folder whose dense CS-QCFS run finished with seed 0 and the demo's T_max."""
    folder = tmp / "demo" / "runs" / "qcfs-dense"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(_result_text(seed=0, t_max=64))


def _folders(*names: str) -> Callable[[Path], None]:
    return lambda tmp: [(tmp / name).mkdir() for name in names]


def _both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for s in setups:
            s(tmp)

    return setup


# -- the table ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """``main(argv)`` (``{tmp}`` is the test's folder, prepared by ``setup``) exits with ``code`` and prints
    ``error: `` + a line matching ``message``."""

    id: str
    argv: list[str]
    message: str
    setup: Callable[[Path], None] | None = None
    code: int = 2


CASES = [
    # run: the output folder, checked before training
    Case("run --out FILE", ["run", *TINY, "--out", "{tmp}/afile"], r"--out \S*afile exists and is not a folder",
         _file),
    Case("run --out under /dev/null", ["run", *TINY, "--out", "/dev/null/out"],
         r"--out /dev/null/out cannot be created: /dev/null is not a folder"),
    Case("run --out under /sys", ["run", *TINY, "--out", "/sys/sparse-convert-test/out"],
         r"--out /sys/sparse-convert-test/out cannot be written: /sys"),
    Case("run --out onto a finished run", ["run", *TINY, "--out", "{tmp}/done"],
         r"--out \S*done holds a finished run \(result.json\); pass --force to replace it", _finished_run),
    # run: flags
    Case("--method-opt levels=abc", ["run", *TINY, "--method-opt", "levels=abc", "--out", "{tmp}/out"],
         r"option levels of method 'qcfs' must be an integer, got 'abc'"),
    Case("--device bogus", ["run", *TINY, "--device", "bogus", "--out", "{tmp}/out"],
         r"device must be cpu, cuda or cuda:N, got 'bogus'"),
    Case("--device meta", ["run", *TINY, "--device", "meta", "--out", "{tmp}/out"],
         r"device must be cpu, cuda or cuda:N, got 'meta'"),
    Case("--model-opt hidden=abc", ["run", *TINY[:3], "--model-opt", "hidden=abc", "--out", "{tmp}/out"],
         r"hidden must be .*integer.*got 'abc'"),
    Case("--seed 2**64", ["run", *TINY, "--seed", str(2**64), "--out", "{tmp}/out"],
         r"seed must be an integer in \[0, 2\*\*63\), got 18446744073709551616"),
    Case("--t-max 1000000000", ["run", *TINY[:5], "--t-max", "1000000000", "--out", "{tmp}/out"],
         r"t_max must be at most 10000 \(about 25 KB of memory per step\), got 1000000000"),
    Case("--t-max abc", ["run", *TINY[:5], "--t-max", "abc", "--out", "{tmp}/out"],
         r"sparse-convert run: argument --t-max: invalid int value: 'abc'"),
    # run: damaged CIFAR files
    Case("CIFAR batch truncated", ["run", *TINY, "--dataset", "cifar10", "--data-root", "{tmp}/c10", "--out",
                                   "{tmp}/out"],
         r"\S*cifar-10-batches-py/data_batch_1 is not a readable CIFAR-10 batch file, corrupt or truncated "
         r"\(\w+Error: .*\); its MD5 is not the published one", _cifar(_truncate)),
    Case("CIFAR batch corrupt", ["run", *TINY, "--dataset", "cifar10", "--data-root", "{tmp}/c10", "--out",
                                 "{tmp}/out"],
         r"\S*data_batch_1 is not a readable CIFAR-10 batch file, corrupt or truncated", _cifar(_garble)),
    Case("CIFAR batch without data", ["run", *TINY, "--dataset", "cifar10", "--data-root", "{tmp}/c10", "--out",
                                      "{tmp}/out"],
         r"\S*data_batch_1 is not a CIFAR-10 batch file: it has no 'data' entry", _cifar(_drop_data_key)),
    # run --ann: the checkpoint's sidecar
    Case("sidecar is a list", ["run", "--quiet", "--ann", "{tmp}/ann.safetensors", "--out", "{tmp}/out"],
         r"\S*ann.json is not a sparse-convert ANN sidecar: it holds a JSON list, not an object",
         _checkpoint(lambda meta: [meta])),
    Case("sidecar model_options null", ["run", "--quiet", "--ann", "{tmp}/ann.safetensors", "--out", "{tmp}/out"],
         r"model_options in \S*ann.json must be a mapping, got None",
         _checkpoint(lambda meta: dict(meta, model_options=None))),
    Case("sidecar without model", ["run", "--quiet", "--ann", "{tmp}/ann.safetensors", "--out", "{tmp}/out"],
         r"\S*ann.json lacks \['model'\], which name the architecture of checkpoint \S*ann.safetensors",
         _checkpoint(_without("model"))),
    Case("sidecar not UTF-8", ["run", "--quiet", "--ann", "{tmp}/ann.safetensors", "--out", "{tmp}/out"],
         r"\S*ann.json is not UTF-8 text: byte 0xff", _checkpoint(raw=b'{"format": "\xff"}')),
    # sweep: the file (every message names it) and the output folder
    Case("sweep grid = 5", ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml: grid must be a table", _sweep_file("grid = 5\n")),
    Case('sweep lr = ["fast"]', ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml: grid.train.lr must be a list of numbers, got \['fast'\]",
         _sweep_file('[grid.train]\nlr = ["fast"]\n')),
    Case('sweep e_mac_pj = "x"', ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml: settings.e_mac_pj must be a number, got 'x'",
         _sweep_file('[grid]\nseed = [0]\n[settings]\ne_mac_pj = "x"\n')),
    Case("sweep empty file", ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml: the sweep file has no \[grid\] axes", _sweep_file("")),
    Case("sweep empty axis", ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml: grid.seed is an empty list: give it at least one value \(e.g. seed = \[0\]\)",
         _sweep_file("[grid]\nseed = []\n")),
    Case("sweep file not UTF-8", ["sweep", "{tmp}/s.toml", "--out", "{tmp}/out"],
         r"\S*s.toml is not UTF-8 text", _sweep_file(b"[grid]\nseed = [0] # \xe9\n")),
    Case("sweep --out FILE", ["sweep", "{tmp}/s.toml", "--out", "{tmp}/afile"],
         r"--out \S*afile exists and is not a folder", _both(_file, _sweep_file("[grid]\nseed = [0]\n"))),
    # report: the output file (checked before any figure) and unreadable results
    Case("report --out under /dev/null", ["report", "{tmp}/res", "--out", "/dev/null/r.md"],
         r"report --out /dev/null/r.md cannot be created: /dev/null is not a folder", _results(_result_text())),
    Case("report --out onto a folder", ["report", "{tmp}/res", "--out", "{tmp}/r.md"],
         r"report --out \S*r.md is a folder; give a file name", _both(_results(_result_text()), _folders("r.md"))),
    Case("result.json without chosen", ["report", "{tmp}/res", "--out", "{tmp}/r.md"],
         r"warning: skipped: \S*run0/result.json lacks chosen: not a complete sparse-convert result\n"
         r"error: no readable result.json under \S*res \(1 unreadable, listed above\)",
         _results(_result_text(drop="chosen"))),
    Case("result.json without config", ["report", "{tmp}/res", "--out", "{tmp}/r.md"],
         r"warning: skipped: \S*run0/result.json lacks config", _results(_result_text(drop="config"))),
    Case("result.json with NaN", ["report", "{tmp}/res", "--out", "{tmp}/r.md"],
         r"warning: skipped: \S*run0/result.json is not valid JSON: NaN is not a JSON number",
         _results(_result_text(edit=lambda r: r.update(ann_accuracy=float("nan"))))),
    Case("result.json with a null in an integrating curve", ["report", "{tmp}/res", "--out", "{tmp}/r.md"],
         r"warning: skipped: \S*run0/result.json: per_step.accuracy has no value at t = 3 \(null\)",
         _results(_result_text(edit=lambda r: r["per_step"]["accuracy"].__setitem__(2, None)))),
    # demo
    Case("demo --out FILE", ["demo", "--quiet", "--out", "{tmp}/afile"],
         r"demo --out \S*afile exists and is not a folder", _file),
    Case("demo onto runs of another seed", ["demo", "--quiet", "--seed", "7", "--out", "{tmp}/demo"],
         r"\S*demo/runs/qcfs-dense holds a finished run of another configuration \(requested vs stored: "
         r"[^)]*seed: 7 vs 0[^)]*\); pass --force", _finished_demo_run),
    Case("demo --t-max 1000000000", ["demo", "--quiet", "--t-max", "1000000000", "--out", "{tmp}/demo"],
         r"t_max must be at most 10000"),
]


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with the bytes of files (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def _never(*args, **kwargs):
    raise AssertionError("bad input must be refused before any training or run")


def _forbid_training(monkeypatch) -> None:
    """Make the training loop fail the test if it starts (where it is defined and where the runner calls it)."""
    for module in (training, runner):
        monkeypatch.setattr(module, "fit", _never)


@pytest.fixture
def no_training(monkeypatch):
    """Training, the demo's runs and a sweep's runs fail the test if they start."""
    _forbid_training(monkeypatch)
    monkeypatch.setattr(pairs_module, "run", _never)
    monkeypatch.setattr(sweep, "sweep", _never)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_exit_2_before_training_and_leaves_nothing(case, tmp_path, capsys,
                                                                               no_training):
    if "/sys/" in " ".join(case.argv) and not Path("/sys").is_dir():
        pytest.skip("no /sys on this system")
    if case.setup is not None:
        case.setup(tmp_path)
    before = _tree(tmp_path)
    code = main([arg.replace("{tmp}", str(tmp_path)) for arg in case.argv])
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == case.code, captured.err
    assert lines and lines[-1].startswith("error: "), captured.err
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), captured.err
    assert sum(line.startswith("error: ") for line in lines) == 1, captured.err
    pattern = case.message if re.search("(error|warning): ", case.message) else f"error: {case.message}"
    assert re.search(pattern, captured.err), captured.err
    assert _tree(tmp_path) == before, "bad input left something behind or changed a file"


# -- the behaviours that need more than one command --------------------------------------------------


def test_a_long_run_onto_a_bad_out_fails_at_once(tmp_path, capsys, monkeypatch):
    _forbid_training(monkeypatch)
    _file(tmp_path)
    code = main(["run", "--quiet", "--epochs", "100000", "--out", str(tmp_path / "afile")])
    assert code == 2 and "exists and is not a folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A tiny finished run, written with umask 027 (so the modes below come from the umask, not a constant)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    old = os.umask(0o027)
    try:
        assert main(["run", *TINY, "--seed", "0", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    return out


def test_outputs_get_the_users_umask(finished):
    assert stat.S_IMODE(finished.stat().st_mode) == 0o750
    for name in ("result.json", "ann.safetensors", "ann.json"):
        assert stat.S_IMODE((finished / name).stat().st_mode) == 0o640, name


def test_atomic_writes_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644


def test_a_finished_run_is_replaced_only_with_force(finished, capsys):
    before = _tree(finished)
    assert main(["run", *TINY, "--seed", "7", "--out", str(finished)]) == 2
    assert "holds a finished run" in capsys.readouterr().err
    assert _tree(finished) == before
    assert main(["run", *TINY, "--seed", "7", "--force", "--out", str(finished)]) == 0
    assert json.loads((finished / "result.json").read_text())["config"]["seed"] == 7
    assert sorted(p.name for p in finished.parent.iterdir()) == ["run"]  # no .run.partial-* left


def test_force_is_documented_in_the_cli_help_and_the_readme(capsys):
    for command in ("run", "demo"):
        with pytest.raises(SystemExit):
            main([command, "-h"])
        assert "--force" in capsys.readouterr().out
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "--force" in readme


def test_demo_with_force_reruns_finished_runs_of_another_seed(tmp_path, monkeypatch):
    _finished_demo_run(tmp_path)
    ran = []

    def fake_run(config, folder, **kwargs):
        ran.append((config.method, config.sparsity, config.seed))
        return make_result(method=config.method, sparsity=config.sparsity, seed=config.seed, t_max=config.t_max,
                           topology=config.topology)

    monkeypatch.setattr(pairs_module, "run", fake_run)
    demo_module.run_demo(tmp_path / "demo", methods=["qcfs"], seed=7, progress=False, force=True)
    assert ran == [("qcfs", 0.0, 7), ("qcfs", 0.9, 7)]


def test_a_report_lists_unreadable_results_and_goes_on(tmp_path, capsys):
    _results(_result_text(), _result_text(drop="chosen"), "[1, 2]")(tmp_path)
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "r.md")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split("/res/")[1].split(" ")[0] for line in err] == ["run1/result.json", "run2/result.json"]
    assert all(line.startswith("warning: skipped: ") for line in err)
    text = (tmp_path / "r.md").read_text()
    skipped = text.split("## Skipped result files", 1)[1].split("\n## ", 1)[0]
    assert "2 `result.json` files could not be read" in skipped
    assert re.search(r"^- \S*/run1/result.json lacks chosen", skipped, re.M)
    assert re.search(r"^- \S*/run2/result.json is not a sparse-convert result", skipped, re.M)
    assert text.startswith("# sparse-convert report\n\n1 runs")


def test_a_cifar_file_that_is_not_the_published_one_is_read_with_a_warning(tmp_path):
    _write_cifar10(tmp_path)
    with pytest.warns(UserWarning) as caught:
        data = load_dataset("cifar10", root=tmp_path)
    assert len(data.test) == 30
    (warning,) = caught
    assert str(warning.message) == (f"{tmp_path / 'cifar-10-batches-py'}: batches.meta, data_batch_1, data_batch_2, "
                                    "data_batch_3, data_batch_4, data_batch_5, test_batch are not the published "
                                    "cifar10 files (MD5 differs); reading them anyway")


def test_the_cli_shows_the_md5_warning_as_one_line(tmp_path, capsys, monkeypatch):
    _forbid_training(monkeypatch)
    _write_cifar10(tmp_path / "c10")
    with pytest.raises(AssertionError, match="before any training"):
        main(["run", *TINY, "--dataset", "cifar10", "--data-root", str(tmp_path / "c10"), "--out",
              str(tmp_path / "out")])
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: ") and line.endswith("are not the published cifar10 files (MD5 differs); "
                                                          "reading them anyway")


def test_a_failed_run_removes_the_parent_folders_it_created(tmp_path):
    with pytest.raises(RuntimeError), staged_output(tmp_path / "a" / "b" / "out") as stage:
        (stage / "result.json").write_text("{}")
        raise RuntimeError("killed mid-run")
    assert list(tmp_path.iterdir()) == []


def test_registries_name_bad_options_but_keep_the_traceback_of_a_bug_inside_a_factory():
    from sparse_convert.models import build_model, register_model
    from sparse_convert.models import registry as model_registry

    with pytest.raises(ValueError, match="bad options for model 'mlp': got an unexpected keyword argument 'colour'"):
        build_model("mlp", 10, (64,), colour=1)

    @register_model("buggy_for_the_test")
    def buggy(num_classes: int, in_shape: tuple[int, ...]):
        return len(None)  # a TypeError inside the factory: a bug, not a bad option

    try:
        with pytest.raises(TypeError, match="has no len"):
            build_model("buggy_for_the_test", 10, (64,))
    finally:
        model_registry._MODELS.pop("buggy_for_the_test")
