"""The staged sweep: each distinct ANN is trained once, and a conversion gives what `run` gives."""

import json
import re
from pathlib import Path

import pytest
import torch
from sweep_fixtures import digits_sweep, tiny_toml  # noqa: F401

from sparse_convert.cli import main
from sparse_convert.experiments import RunConfig, run
from sparse_convert.experiments.stages import ann_name, plan
from sparse_convert.experiments.sweep import dry_run_line, expand_grid, load_sweep, sweep

STAGED = {
    "grid": {
        "method": ["qcfs", "snm"], "sparsity": [0.0, 0.9], "topology": ["cht"], "t_max": [12],
        "train": {"lr": [0.05, 0.02], "epochs": [3]},
        "model_options": {"mlp": {"hidden": [[24]]}},
        "method_options": {"qcfs": {"levels": [4, 8], "layer_epochs": [1], "channel_epochs": [1]}},
    },
}


def test_the_plan_has_one_ann_stage_per_distinct_ann_and_one_conversion_per_configuration():
    configs = expand_grid(STAGED)
    tasks = plan(configs)
    anns = [t for t in tasks if t.kind == "ann"]
    assert len(configs) == 12 and len(anns) == 4 and len(tasks) == 16
    assert tasks[:4] == anns  # ANN stages first
    for task in tasks[4:]:
        assert task.ann in {a.name for a in anns} and task.needs == (task.ann,)
    assert dry_run_line(tasks, len(configs)) == "12 configurations: 4 ANN trainings, 12 conversions"
    assert [(t.kind, t.needs) for t in plan(configs, share=False)] == [("run", ())] * 12


def test_ann_names_ignore_what_only_the_conversion_uses():
    base = RunConfig(method="qcfs", sparsity=0.9, topology="cht", seed=2).to_dict()
    name = ann_name(base)
    assert name.startswith("mlp-digits-cht0.9-seed2-")
    for other in (dict(base, method="snm"), dict(base, t_max=8), dict(base, method_options={"levels": 2}),
                  dict(base, e_ac_pj=0.5), dict(base, device="cuda"), dict(base, chunk=2)):
        assert ann_name(other) == name
    for other in (dict(base, seed=3), dict(base, sparsity=0.5), dict(base, model_options={"hidden": [8]}),
                  dict(base, train=dict(base["train"], lr=0.1)), dict(base, topology="set")):
        assert ann_name(other) != name


@pytest.mark.slow
def test_a_staged_sweep_trains_4_anns_for_12_conversions_each_equal_to_run(tmp_path):
    configs = expand_grid(STAGED)
    summary = sweep(configs, tmp_path / "sweep", workers=2)
    assert summary.ok and len(summary.anns.ran) == 4 and len(summary.conversions.ran) == 12
    assert len(list((tmp_path / "sweep" / "anns").iterdir())) == 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a sweep worker
    try:
        for config in configs:
            staged = json.loads((tmp_path / "sweep" / "runs" / _run_folder(config) / "result.json").read_text())
            alone = run(config, progress=False)
            for key in ("per_step", "chosen", "saturation", "ann_accuracy", "ann_val_accuracy", "density"):
                assert staged[key] == alone[key], (config.method, key)
            assert staged["config"] == alone["config"]
            assert staged["topology"]["rule"] == alone["topology"]["rule"] == config.topology
    finally:
        torch.set_num_threads(threads)


def _run_folder(config: RunConfig) -> str:
    from sparse_convert.experiments.sweep import run_name

    return run_name(config.to_dict())


@pytest.mark.slow
def test_convert_best_converts_only_the_ann_configuration_with_the_best_mean_validation_accuracy(tmp_path):
    from sparse_convert.experiments.sweep import SweepOptions

    spec = {"grid": {"method": ["snm"], "sparsity": [0.0], "seed": [0, 1], "t_max": [4],
                     "train": {"lr": [0.05, 0.0005], "epochs": [2]}, "model_options": {"mlp": {"hidden": [[16]]}}}}
    configs = expand_grid(spec)
    out = tmp_path / "best"
    summary = sweep(configs, out, workers=2, options=SweepOptions(convert="best"))
    assert summary.ok and len(summary.anns.ran) == 4
    assert len(summary.conversions.ran) == 2 and len(summary.conversions.unselected) == 2
    scores = {}
    for folder in (out / "anns").iterdir():
        ann = json.loads((folder / "ann_result.json").read_text())
        scores.setdefault(ann["config"]["train"]["lr"], []).append(ann["ann_val_accuracy"])
    best_lr = max(scores, key=lambda lr: sum(scores[lr]) / len(scores[lr]))
    converted = [json.loads(p.read_text())["config"] for p in (out / "runs").glob("*/result.json")]
    assert sorted(c["seed"] for c in converted) == [0, 1] and {c["train"]["lr"] for c in converted} == {best_lr}


PAPER = sorted((Path(__file__).resolve().parents[1] / "examples" / "paper").glob("*.toml"))


@pytest.mark.parametrize("path", PAPER, ids=[p.name for p in PAPER])
def test_each_paper_grid_dry_runs_to_the_counts_its_header_states(path, capsys):
    stated = re.search(r"^#   -> (.+)$", path.read_text(), re.MULTILINE).group(1)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == stated


def test_the_mlp_cifar10_grid_is_table_a1():
    configs = load_sweep(PAPER[0].with_name("mlp_cifar10.toml"))
    by_method = {m: [c for c in configs if c.method == m] for m in ("qcfs", "snm", "aec")}
    assert {len(v) for v in by_method.values()} == {18 * 75, 18 * 3, 18 * 9}
    assert {c.train.lr for c in configs} == {0.1, 0.001, 0.0001} and {c.train.batch_size for c in configs} == {
        32, 64, 128}
    assert {c.method_options["levels"] for c in by_method["qcfs"]} == {2, 4, 8, 16, 32}
    assert {c.sparsity for c in configs} == {0.0, 0.99}


def test_the_stage_table_counts_failed_anns_and_the_conversions_they_skipped(tmp_path):
    from sparse_convert.experiments.stages import run_task
    from sparse_convert.experiments.sweep import stage_table

    bad = RunConfig(dataset="cifar10", data_root=str(tmp_path / "nowhere"), method="snm")
    for task in plan([bad, RunConfig(dataset="cifar10", data_root=str(tmp_path / "nowhere"), method="qcfs")]):
        run_task(task, tmp_path)
    assert stage_table(tmp_path) == [
        {"stage": "ANN training", "complete": 0, "failed": 1, "skipped": 0, "wall_s": 0.0},
        {"stage": "conversion", "complete": 0, "failed": 0, "skipped": 2, "wall_s": 0.0}]
    assert stage_table(tmp_path / "elsewhere") == []


def test_the_stage_table_leaves_out_a_result_it_cannot_read(tmp_path):
    """The report lists an unreadable result and goes on; its stage table must not stop on it either."""
    from sparse_convert.experiments.sweep import stage_table

    good = Path(__file__).parent / "data" / "result_v1_integrate.json"
    for name, text in (("good", good.read_text()), ("corrupt", '{"format": "sparse-convert/result"')):
        (tmp_path / "runs" / name).mkdir(parents=True)
        (tmp_path / "runs" / name / "result.json").write_text(text)
    (conversion,) = stage_table(tmp_path)
    assert conversion["stage"] == "conversion" and conversion["complete"] == 1


def test_the_report_of_a_sweep_shows_its_stages(digits_sweep, tmp_path):  # noqa: F811
    assert main(["report", str(digits_sweep), "--out", str(tmp_path / "r.md")]) == 0
    text = (tmp_path / "r.md").read_text()
    assert "## Sweep stages" in text
    assert re.search(r"\| ANN training \| 6 \| 0 \| 0 \| [0-9.]+ \|", text), text
    assert re.search(r"\| conversion \| 18 \| 0 \| 0 \| [0-9.]+ \|", text), text
