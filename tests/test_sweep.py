"""Grid search: the TOML grid, folder names, locks, resuming after SIGKILL (local and Ray), best.json."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_fixtures import TINY_CONFIGS, cli_env, digits_sweep, sweep_command, tiny_toml  # noqa: F401
from synthetic_results import make_result

from sparse_convert.cli import main
from sparse_convert.experiments import RunConfig
from sparse_convert.experiments.runner import load_result
from sparse_convert.experiments.sweep import (
    best_configurations,
    collect_results,
    config_lock,
    expand_grid,
    load_sweep,
    run_configuration,
    run_name,
)
from sparse_convert.training import FitConfig

ROOT = Path(__file__).resolve().parents[1]
GRID = {
    "grid": {
        "method": ["qcfs", "snm"], "sparsity": [0.0, 0.9], "topology": ["cht", "set"], "seed": [0, 1],
        "train": {"lr": [0.1, 0.01]},
        "method_options": {"qcfs": {"levels": [4, 8]}},
    },
    "settings": {"t_max": 16},
}


def test_the_grid_is_the_product_of_its_lists_and_dense_runs_are_static():
    configs = expand_grid(GRID)
    # qcfs: (dense 1 + sparse 2 topologies) x 2 seeds x 2 lr x 2 levels = 24; snm: 3 x 2 x 2 = 12
    assert len(configs) == 36
    assert {c.topology for c in configs if c.sparsity == 0} == {"static"}
    assert {c.topology for c in configs if c.sparsity > 0} == {"cht", "set"}
    assert {c.method_options.get("levels") for c in configs if c.method == "qcfs"} == {4, 8}
    assert all(c.method_options == {} for c in configs if c.method == "snm")
    assert {c.train.lr for c in configs} == {0.1, 0.01}
    assert {c.train.epochs for c in configs} == {30} and all(c.t_max == 16 for c in configs)  # untouched defaults
    assert len({run_name(c.to_dict()) for c in configs}) == 36


BAD_GRIDS = [
    ({"grid": {"seed": 0}}, r"grid.seed must be a non-empty list of values \(e.g. seed = \[0\]\)"),
    ({"grid": {"colour": ["red"]}}, "unknown grid axis 'colour'"),
    ({"grid": {"train": {"lr": [0.1], "momentun": [0.9]}}}, r"unknown keys \['momentun'\] in grid.train"),
    ({"grid": {"method": ["qcfs"], "method_options": {"snm": {"percentile": [99.0]}}}},
     r"grid.method_options has options for \['snm'\], which grid.method does not list"),
    ({"grid": {"method_options": {"qcfs": {"levelz": [4]}}}}, r"unknown options \['levelz'\] for method 'qcfs'"),
    ({"grid": {"method": ["magic"]}}, "unknown method 'magic'"),
    ({"grid": {"seed": [0]}, "settings": {"seed": 1}}, r"\['seed'\] appear both in \[grid\] and in \[settings\]"),
    ({"grids": {}}, r"unknown top-level tables \['grids'\]"),
]


@pytest.mark.parametrize("spec,message", BAD_GRIDS, ids=[m for _, m in BAD_GRIDS])
def test_a_bad_grid_is_refused_before_anything_runs(spec, message):
    with pytest.raises(ValueError, match=message):
        expand_grid(spec)


def test_folder_names_are_readable_and_stable_and_ignore_placement():
    config = RunConfig(method="qcfs", sparsity=0.9, topology="cht", seed=2).to_dict()
    name = run_name(config)
    assert re.fullmatch(r"mlp-digits-qcfs-cht0\.9-seed2-[0-9a-f]{10}", name)
    assert run_name(dict(config, device="cuda", chunk=4, eval_batch_size=7)) == name
    assert run_name(dict(config, seed=3)) != name and run_name(dict(config, t_max=8)) != name
    assert run_name(RunConfig().to_dict()).startswith("mlp-digits-qcfs-dense-seed0-")


def test_the_example_sweep_file_describes_at_least_12_digits_configurations():
    configs = load_sweep(ROOT / "examples" / "sweep_digits.toml")
    assert len(configs) >= 12 and {c.dataset for c in configs} == {"digits"}
    assert {c.method for c in configs} >= {"qcfs", "snm", "aec"} and {c.seed for c in configs} == {0, 1, 2}
    assert len({run_name(c.to_dict()) for c in configs}) == len(configs)


def test_cli_dry_run_lists_names_and_bad_files_are_clear_errors(tmp_path, capsys):
    toml = tmp_path / "s.toml"
    toml.write_text('[grid]\nmethod = ["qcfs", "snm"]\n')
    assert main(["sweep", str(toml), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 configurations" and lines[0].startswith("mlp-digits-qcfs-dense-seed0-")
    assert not (tmp_path / "out").exists()
    toml.write_text("[grid\nmethod = 1")
    assert main(["sweep", str(toml), "--out", str(tmp_path / "out")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_held_lock_is_busy_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / ".locks" / "x.lock"
    with config_lock(lock, wait=False) as held:
        assert held
        with config_lock(lock, wait=False) as again:
            assert not again
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with config_lock(lock, wait=False) as held:
        assert not held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with config_lock(lock, wait=False) as held:
        assert held  # the kernel released it with the process


TINY = RunConfig(t_max=8, train=FitConfig(epochs=1), model_options={"hidden": [16]}, method="snm").to_dict()


def test_run_configuration_skips_busy_and_complete_ones_and_cleans_a_killed_runs_leftovers(tmp_path):
    name = run_name(TINY)
    runs = tmp_path / "runs"
    leftover = runs / f".{name}.partial-abc123"
    leftover.mkdir(parents=True)
    (leftover / "ann.safetensors").write_bytes(b"half")
    (runs / name).mkdir()
    (runs / name / "ann.json").write_text("{}")  # moved in before the kill; result.json never was
    with config_lock(tmp_path / ".locks" / f"{name}.lock", wait=False):
        assert run_configuration(TINY, str(tmp_path), name) == ("busy", None)
    assert run_configuration(TINY, str(tmp_path), name) == ("ran", None)
    assert not leftover.exists()
    assert sorted(p.name for p in (runs / name).iterdir()) == ["ann.json", "ann.safetensors", "result.json"]
    leftover.mkdir()  # killed between moving result.json in and removing the staging folder
    assert run_configuration(TINY, str(tmp_path), name) == ("complete", None)
    assert not leftover.exists()


def test_a_failing_configuration_is_recorded_and_does_not_stop_the_sweep(tmp_path):
    bad = dict(TINY, dataset="cifar10", data_root=str(tmp_path / "nowhere"))
    status, error = run_configuration(bad, str(tmp_path), "bad")
    assert status == "failed" and "cifar10 not found" in error
    assert "cifar10 not found" in (tmp_path / "errors" / "bad.txt").read_text()
    assert not (tmp_path / "runs" / "bad").exists()


def test_collect_results_skips_staging_folders_and_best_json_names_runs(tmp_path):
    r = make_result()
    for folder in ("runs/a", "runs/.a.partial-x"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "result.json").write_text(json.dumps(r))
    assert collect_results(tmp_path) == [r]
    best = best_configurations([r, make_result(seed=1, val=0.5)])
    (group,) = best["groups"]
    assert group["seeds"] == [0, 1] and group["runs"] == [run_name(r["config"]), run_name(dict(r["config"], seed=1))]
    assert "never" in best["rule"]


# -- killed at random moments, restarted -----------------------------------------------------------


def _complete(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "runs").glob("*/result.json")}


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the sweep, its workers, and Ray's daemons, which leave its group)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _kill_session(sid: int, timeout: float = 30.0) -> None:
    """SIGKILL every process the sweep started, until none is left."""
    deadline = time.monotonic() + timeout
    while members := _session_members(sid):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {members} of session {sid} outlived SIGKILL")
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "a") as f:
        return subprocess.Popen(command, env=cli_env(), stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_at_random_moment(command: list[str], out: Path, rng: random.Random, log: Path) -> None:
    """Start the sweep, wait for it to complete one more configuration, then SIGKILL it and every process
    it started, after a random 0-1.5 s (while other configurations are in flight)."""
    before = len(_complete(out))
    proc = _start(command, log)
    deadline = time.monotonic() + 300
    while proc.poll() is None and len(_complete(out)) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.5))
    _kill_session(proc.pid)
    proc.wait()
    for name in _complete(out):  # whatever is there is whole
        load_result(out / "runs" / name)


def _summary_ran(log_text: str) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) ran, \d+ already complete, 0 failed", log_text)]


def _check_killed_and_restarted(toml: Path, baseline: Path, out: Path, backend: str, tmp_path: Path,
                                restarts: int):
    seed = int(os.environ.get("SWEEP_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    command = sweep_command(toml, out, "--workers", "2", "--backend", backend)
    log = tmp_path / "sweep.log"
    for _ in range(2):
        _kill_at_random_moment(command, out, rng, log)
    incomplete = TINY_CONFIGS - len(_complete(out))
    assert incomplete > 0, f"the sweep finished before it was killed (seed {seed})"

    # restarted (with restarts=2, twice at once on the same folder): each missing configuration runs once
    logs = [tmp_path / f"restart-{i}.log" for i in range(restarts)]
    procs = [_start(command, path) for path in logs]
    assert [p.wait(timeout=600) for p in procs] == [0] * restarts, logs[0].read_text()[-3000:]
    ran = [_summary_ran(path.read_text()) for path in logs]
    assert sum(r[0] for r in ran) == incomplete, (seed, ran, incomplete)

    names = {run_name(c.to_dict()) for c in load_sweep(toml)}
    runs = out / "runs"
    assert {p.name for p in runs.iterdir()} == names, f"seed {seed}: stray or missing entries in runs/"
    for name in names:
        assert sorted(p.name for p in (runs / name).iterdir()) == ["ann.json", "ann.safetensors", "result.json"]
        mine, reference = load_result(runs / name), load_result(baseline / "runs" / name)
        assert mine["per_step"] == reference["per_step"], f"seed {seed}: {name} differs"
        assert mine["chosen"] == reference["chosen"]
    assert not (out / "errors").exists() or not any((out / "errors").iterdir())
    assert json.loads((out / "best.json").read_text()) == json.loads((baseline / "best.json").read_text())


def test_a_sweep_killed_twice_and_restarted_ends_with_exactly_one_identical_result_each(
        tiny_toml, digits_sweep, tmp_path):  # noqa: F811
    _check_killed_and_restarted(tiny_toml, digits_sweep, tmp_path / "killed", "local", tmp_path, restarts=2)


def test_the_ray_backend_survives_the_same_kills_with_identical_results(tiny_toml, digits_sweep, tmp_path):  # noqa: F811
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install 'sparse-convert[ray]')")
    # one restart: two Ray drivers started at once would each start a local Ray cluster on 2 cores
    _check_killed_and_restarted(tiny_toml, digits_sweep, tmp_path / "killed-ray", "ray", tmp_path, restarts=1)
