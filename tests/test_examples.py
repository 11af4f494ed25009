"""Every example script runs on digits with small settings, as a subprocess (two at a time on two cores)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_fixtures import cli_env

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SMALL = {
    "mlp_cifar": ["--epochs", "3", "--method-epochs", "1", "--t-max", "8", "--out", "{out}"],
    "vgg16_cifar": ["--width", "0.0625", "--epochs", "1", "--method-epochs", "0", "--t-max", "4", "--sparse-only",
                    "--out", "{out}"],
    "custom_neuron": ["--epochs", "3", "--method-epochs", "1", "--t-max", "8", "--out", "{out}"],
    "plug_into_spikingjelly": ["--epochs", "3", "--t-max", "8"],
    "vit_imagenet": ["--epochs", "1", "--method-opt", "epochs=1", "--t-max", "8"],
}
PARALLEL = 2


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory):
    """Run the examples, ``PARALLEL`` at a time; returns {name: (return code, output)}."""
    root = tmp_path_factory.mktemp("examples")
    pending, running, done = list(SMALL), {}, {}
    while pending or running:
        while pending and len(running) < PARALLEL:
            name = pending.pop(0)
            args = [a.format(out=root / name) for a in SMALL[name]]
            log = open(root / f"{name}.log", "w")
            running[name] = (subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=root,
                                              env=cli_env(), stdout=log, stderr=subprocess.STDOUT), log)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                done[name] = (proc.returncode, (root / f"{name}.log").read_text(), root / name)
                del running[name]
        time.sleep(0.1)
    return done


def _ok(example_runs, name):
    code, output, out = example_runs[name]
    assert code == 0, output[-3000:]
    return output, out


def test_mlp_example_writes_table_1_and_a_report(example_runs):
    output, out = _ok(example_runs, "mlp_cifar")
    assert "| digits | mlp | qcfs | cht |" in output
    assert (out / "report.md").is_file() and (out / "accuracy_vs_t.png").is_file()
    assert {p.name for p in out.iterdir()} >= {"qcfs-dense", "qcfs-sparse"}


def test_vgg16_example_runs_a_narrow_vgg16_on_digits(example_runs):
    output, out = _ok(example_runs, "vgg16_cifar")
    assert (out / "qcfs-sparse" / "result.json").is_file() and "report:" in output


def test_custom_neuron_example_registers_and_runs_a_new_method(example_runs):
    output, out = _ok(example_runs, "custom_neuron")
    assert "| qcfs_reset_to_zero |" in output and "| qcfs |" in output
    assert "cupy backend: ResetToZeroNode overrides the equations of CSQCFSNode" in output
    assert (out / "qcfs_reset_to_zero" / "result.json").is_file()


def test_plain_spikingjelly_network_gets_masks_and_exact_energy(example_runs):
    output, _ = _ok(example_runs, "plug_into_spikingjelly")
    assert "masked layers: ['1', '3']" in output
    assert "MAC/AC roles: {'1': 'mac', '3': 'ac', '5': 'ac'}" in output
    assert "T=  8: accuracy" in output


def test_vit_example_converts_a_sparse_vit_with_spikezip(example_runs):
    output, _ = _ok(example_runs, "vit_imagenet")
    assert "ANN: accuracy" in output and "T=  8: accuracy" in output
