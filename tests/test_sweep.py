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
from unittest.mock import ANY

import pytest
from sweep_fixtures import TINY_ANNS, TINY_CONFIGS, TINY_SWEEP, cli_env, digits_sweep, sweep_command, tiny_toml  # noqa: F401
from synthetic_results import make_result

from sparse_convert.cli import main
from sparse_convert.experiments import RunConfig, load_checkpoint
from sparse_convert.experiments.runner import load_result
from sparse_convert.experiments.stages import ann_name, plan, run_task, stage_lock
from sparse_convert.experiments.sweep import (
    best_configurations,
    collect_results,
    expand_grid,
    load_sweep,
    run_name,
)
from sparse_convert.fileio import read_json
from sparse_convert.training import FitConfig

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
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
    assert lines[-1] == "2 configurations: 1 ANN trainings, 2 conversions"
    assert lines[0].startswith("ann        mlp-digits-dense-seed0-")
    assert lines[1].startswith("conversion mlp-digits-qcfs-dense-seed0-")
    assert not (tmp_path / "out").exists()
    toml.write_text("[grid\nmethod = 1")
    assert main(["sweep", str(toml), "--out", str(tmp_path / "out")]) == 2
    assert "is not valid TOML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_held_lock_is_busy_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / ".locks" / "x.lock"
    with stage_lock(lock, wait=False) as held:
        assert held
        with stage_lock(lock, wait=False) as again:
            assert not again
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with stage_lock(lock, wait=False) as held:
        assert not held
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with stage_lock(lock, wait=False) as held:
        assert held  # the kernel released it with the process


TINY = RunConfig(t_max=8, train=FitConfig(epochs=1), model_options={"hidden": [16]}, method="snm").to_dict()


def test_a_task_skips_busy_and_complete_ones_and_cleans_a_killed_runs_leftovers(tmp_path):
    (ann, conversion) = plan([RunConfig.from_dict(TINY)])
    runs = tmp_path / "runs"
    leftover = runs / f".{conversion.name}.partial-abc123"
    leftover.mkdir(parents=True)
    (leftover / "result.json").write_text("{}")
    with stage_lock(tmp_path / ".locks" / f"{conversion.name}.lock", wait=False):
        assert run_task(conversion, tmp_path) == ("busy", None)  # (it trained the ANN it needs first)
    assert sorted(p.name for p in (tmp_path / "anns" / ann.name).iterdir()) == [
        "ann.json", "ann.safetensors", "ann_result.json"]
    assert run_task(ann, tmp_path) == ("complete", None)
    assert run_task(conversion, tmp_path) == ("ran", None)
    assert not leftover.exists()
    assert sorted(p.name for p in (runs / conversion.name).iterdir()) == ["result.json"]
    leftover.mkdir()  # killed between moving result.json in and removing the staging folder
    assert run_task(conversion, tmp_path) == ("complete", None)


def test_a_failing_ann_is_recorded_and_its_conversions_are_skipped_naming_it(tmp_path):
    bad = dict(TINY, dataset="cifar10", data_root=str(tmp_path / "nowhere"))
    ann, conversion = plan([RunConfig.from_dict(bad)])
    status, error = run_task(ann, tmp_path)
    assert status == "failed" and "cifar10 not found" in error
    assert "cifar10 not found" in (tmp_path / "errors" / "anns" / f"{ann.name}.txt").read_text()
    status, error = run_task(conversion, tmp_path)
    assert status == "skipped" and f"its ANN stage {ann.name} failed" in error and "cifar10 not found" in error
    assert error in (tmp_path / "errors" / f"{conversion.name}.txt").read_text()
    assert not (tmp_path / "runs" / conversion.name).exists() and not (tmp_path / "anns" / ann.name).exists()


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


def _complete_anns(out: Path) -> set[str]:
    return {p.parent.name for p in (out / "anns").glob("*/ann_result.json")}


def _finished_tasks(out: Path) -> int:
    return len(_complete(out)) + len(_complete_anns(out))


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


def _start(command: list[str], log: Path, gate: Path | None = None) -> subprocess.Popen:
    env = cli_env()
    if gate is not None:  # every configuration waits for a token of the gate (tests/sweep_gate.py)
        env.update(SWEEP_GATE=str(gate), SPARSE_CONVERT_PLUGINS="sweep_gate",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")])))
    with open(log, "a") as f:
        return subprocess.Popen(command, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    """Poll ``condition`` until it holds; fail if the sweep exits first (or after a generous timeout)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the sweep exited ({proc.returncode}) before {what}: {log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s: {log.read_text()[-3000:]}")
        time.sleep(0.02)


def _reset_gate(gate: Path) -> None:
    for path in gate.iterdir():
        path.unlink()


def _kill_while_in_flight(command: list[str], out: Path, rng: random.Random, log: Path, gate: Path) -> None:
    """Start the sweep with a closed gate, let 1-3 configurations through and wait for them to complete
    and for another worker to be waiting at the gate; then let one more through and SIGKILL the sweep and
    every process it started after a random 0-1 s, so that the kill lands in the middle of that run
    (training, converting or writing) or before it, and always while configurations are in flight."""
    _reset_gate(gate)
    before = _finished_tasks(out)
    tokens = rng.randint(1, 3)
    for i in range(tokens):
        (gate / f"{i}.token").touch()
    proc = _start(command, log, gate)
    _wait_for(lambda: _finished_tasks(out) >= before + tokens and any(gate.glob("waiting-*")),
              f"{tokens} tasks completed with another one waiting", proc, log)
    (gate / "last.token").touch()
    time.sleep(rng.uniform(0.0, 1.0))
    assert proc.poll() is None, "the sweep cannot finish while configurations wait for tokens"
    _kill_session(proc.pid)
    proc.wait()
    for name in _complete(out):  # whatever is there is whole
        load_result(out / "runs" / name)
    for name in _complete_anns(out):
        read_json(out / "anns" / name / "ann_result.json")
        load_checkpoint(out / "anns" / name / "ann.safetensors")


def _summary_ran(log_text: str) -> list[tuple[int, int]]:
    """(ANN stages, conversions) each restarted sweep ran, from its closing line."""
    pattern = r"ANN trainings \((\d+) ran, \d+ already complete, 0 failed\), conversions: (\d+) ran, \d+ already"
    return [(int(a), int(c)) for a, c in re.findall(pattern, log_text)]


def _check_killed_and_restarted(toml: Path, baseline: Path, out: Path, backend: str, tmp_path: Path,
                                restarts: int):
    seed = int(os.environ.get("SWEEP_KILL_SEED", time.time_ns() % 10**6))
    rng = random.Random(seed)
    command = sweep_command(toml, out, "--workers", "2", "--backend", backend)
    log, gate = tmp_path / "sweep.log", tmp_path / "gate"
    gate.mkdir()
    for _ in range(2):
        _kill_while_in_flight(command, out, rng, log, gate)
    incomplete = TINY_CONFIGS - len(_complete(out))
    incomplete_anns = TINY_ANNS - len(_complete_anns(out))
    assert incomplete > 0, (seed, incomplete)

    # restarted with the gate open (with restarts=2, twice at once on the same folder): each missing
    # configuration runs once
    _reset_gate(gate)
    (gate / "open").touch()
    logs = [tmp_path / f"restart-{i}.log" for i in range(restarts)]
    procs = [_start(command, path, gate) for path in logs]
    assert [p.wait(timeout=600) for p in procs] == [0] * restarts, logs[0].read_text()[-3000:]
    ran = [_summary_ran(path.read_text()) for path in logs]
    assert sum(r[0][0] for r in ran) == incomplete_anns, (seed, ran, incomplete_anns)
    assert sum(r[0][1] for r in ran) == incomplete, (seed, ran, incomplete)

    names = {run_name(c.to_dict()) for c in load_sweep(toml)}
    runs = out / "runs"
    assert {p.name for p in runs.iterdir()} == names, f"seed {seed}: stray or missing entries in runs/"
    anns = {ann_name(c.to_dict()) for c in load_sweep(toml)}
    assert {p.name for p in (out / "anns").iterdir()} == anns, f"seed {seed}: stray or missing entries in anns/"
    for name in anns:
        assert sorted(p.name for p in (out / "anns" / name).iterdir()) == [
            "ann.json", "ann.safetensors", "ann_result.json"]
        assert read_json(out / "anns" / name / "ann_result.json") == read_json(
            baseline / "anns" / name / "ann_result.json") | {"timing": ANY}
    for name in names:
        assert sorted(p.name for p in (runs / name).iterdir()) == ["result.json"]
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


#: Three dense CS-QCFS configurations of the tiny sweep.
THREE = TINY_SWEEP.replace('method = ["qcfs", "snm", "aec"]', 'method = ["qcfs"]').replace(
    "sparsity = [0.0, 0.9]", "sparsity = [0.0]").replace("[grid.method_options.aec]\nepochs = [1]\n", "")


def _names_of_anns(toml: Path) -> set[str]:
    return {ann_name(c.to_dict()) for c in load_sweep(toml)}


def _waiting_pids(gate: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in gate.glob("waiting-*")]


def _three_with_two_workers_waiting(tmp_path: Path):
    """The sweep of ``THREE`` started with a closed gate, once both its workers wait there."""
    toml, out, gate, log = tmp_path / "three.toml", tmp_path / "out", tmp_path / "gate", tmp_path / "log"
    toml.write_text(THREE)
    gate.mkdir()
    proc = _start(sweep_command(toml, out, "--workers", "2"), log, gate)
    _wait_for(lambda: len(_waiting_pids(gate)) == 2, "two workers waiting", proc, log)
    return toml, out, gate, log, proc


def test_a_killed_worker_fails_only_its_configuration_and_the_sweep_goes_on(tmp_path):
    toml, out, gate, log, proc = _three_with_two_workers_waiting(tmp_path)
    victim = _waiting_pids(gate)[0]
    os.kill(victim, signal.SIGKILL)
    (gate / "open").touch()
    assert proc.wait(timeout=600) == 1, log.read_text()[-3000:]
    text = log.read_text()
    errors = {p.stem: p.read_text() for p in (out / "errors").rglob("*.txt")}
    (killed,) = [name for name, message in errors.items() if message.startswith("the worker process was killed by "
                                                                                  "signal 9 (SIGKILL)")]
    if killed in _names_of_anns(toml):  # the ANN stage died: its one conversion is skipped, naming it
        (skipped,) = set(errors) - {killed}
        assert f"skipped: its ANN stage {killed} failed: the worker process was killed" in errors[skipped]
        assert "ANN trainings (2 ran, 0 already complete, 1 failed), conversions: 2 ran" in text, text[-3000:]
    else:
        assert set(errors) == {killed}
        assert "ANN trainings (3 ran, 0 already complete, 0 failed), conversions: 2 ran" in text, text[-3000:]
    assert len(_complete(out)) == 2 and killed not in _complete(out)
    assert (out / "best.json").is_file()
    _kill_session(proc.pid)  # nothing is left, but never leave a stray process behind a failing test


def test_workers_die_with_a_killed_sweep(tmp_path):
    toml, out, gate, log, proc = _three_with_two_workers_waiting(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # the main process only
    proc.wait()
    deadline = time.monotonic() + 60
    while (left := _session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_session(proc.pid)
    assert not left, f"processes {left} outlived their sweep"
    assert not _complete(out)


def test_ray_resources_on_the_local_backend_are_refused(tiny_toml, tmp_path, capsys):  # noqa: F811
    assert main(["sweep", str(tiny_toml), "--out", str(tmp_path / "o"), "--gpus-per-trial", "0.25"]) == 2
    assert "--cpus-per-trial and --gpus-per-trial are Ray options" in capsys.readouterr().err


def test_gpus_per_trial_without_a_gpu_is_refused_before_anything_runs(tiny_toml, tmp_path):  # noqa: F811
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install 'sparse-convert[ray]')")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "o"
    done = subprocess.run(sweep_command(tiny_toml, out, "--backend", "ray", "--gpus-per-trial", "0.5"),
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "error: --gpus-per-trial 0.5 but the Ray cluster has 0 GPUs" in done.stderr
    assert not (out / "anns").exists() and not any((out / "runs").iterdir())
