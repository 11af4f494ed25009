"""``RunResult`` / ``AnnResult``: files in today's format load, round-trip byte for byte, and bad ones are
refused with one line naming the file."""

import json
import shutil
from pathlib import Path

import pytest
from synthetic_results import make_run_result

from sparse_convert.cli import main
from sparse_convert.experiments import AnnResult, RunConfig, RunResult, load_result
from sparse_convert.experiments.collection import collect_results
from sparse_convert.experiments.stages import ann_name, run_name

DATA = Path(__file__).parent / "data"
#: ``result.json`` files written by ``run`` before ``RunResult`` existed (digits MLP, 2 epochs, t_max 8).
FIXTURES = {"integrate": DATA / "result_v1_integrate.json", "window": DATA / "result_v1_window.json"}
#: The sweep folder names that code gave these configs; they must not change.
RUN_NAMES = {"integrate": "mlp-digits-qcfs-set0.5-seed0-672881b6dd", "window": "mlp-digits-aec-set0.5-seed0-4fbce7e04b"}


@pytest.mark.parametrize("mode", FIXTURES)
def test_a_result_in_todays_format_loads_with_its_typed_fields(mode):
    path = FIXTURES[mode]
    result = RunResult.load(path)
    assert result.time_mode == mode and result.version == 1 and result.extra == {}
    assert result.config["method"] == ("qcfs" if mode == "integrate" else "aec")
    assert result.per_step["t"] == list(range(1, 9)) and len(result.per_step["accuracy"]) == 8
    assert result.chosen["energy_uj"] == result.per_step["energy_uj"][result.chosen["t"] - 1]
    assert (result.windows is not None) == (mode == "window")
    assert result.topology["rule"] == "set" and result.environment["sparse_convert"]
    assert set(result.timing) == {"train_s", "prepare_s", "evaluate_s"}
    config = result.run_config()
    assert isinstance(config, RunConfig) and config.to_dict() == result.config
    document = json.loads(path.read_text())
    assert result.to_dict() == document and list(result.to_dict()) == list(document)  # same keys, same order
    assert load_result(path.parent / path.name) == document
    assert run_name(result.config) == RUN_NAMES[mode]
    assert ann_name(result.config) == "mlp-digits-set0.5-seed0-8d431bd8f9"


@pytest.mark.parametrize("mode", FIXTURES)
def test_saving_a_loaded_result_rewrites_the_same_bytes(mode, tmp_path):
    RunResult.load(FIXTURES[mode]).save(tmp_path / "result.json")
    assert (tmp_path / "result.json").read_bytes() == FIXTURES[mode].read_bytes()


def test_the_report_reads_results_in_todays_format(tmp_path, capsys):
    for mode, path in FIXTURES.items():
        (tmp_path / "res" / mode).mkdir(parents=True)
        shutil.copy(path, tmp_path / "res" / mode / "result.json")
    assert collect_results(tmp_path / "res") == [json.loads(FIXTURES[m].read_text()) for m in ("integrate", "window")]
    assert [r.time_mode for r in RunResult.collect(tmp_path / "res")] == ["integrate", "window"]
    assert main(["report", str(tmp_path / "res"), "--out", str(tmp_path / "r.md")]) == 0
    assert "(2 runs;" in capsys.readouterr().out
    assert (tmp_path / "r.md").read_text().startswith("# sparse-convert report\n\n2 runs")


def test_save_then_load_gives_the_same_result(tmp_path):
    for result in (make_run_result(), make_run_result(method="aec", sparsity=0.9, val=None)):
        result.extra = {"added_later": {"x": [1, 2]}}  # a key a newer version writes survives the round trip
        path = result.save(tmp_path / result.config["method"] / "result.json")
        assert RunResult.load(path.parent) == result
        assert json.loads(path.read_text())["added_later"] == {"x": [1, 2]}
    assert "windows" not in make_run_result().to_dict()  # integrating results have no windows block


def test_the_ann_stage_result_in_todays_format_loads_and_round_trips(tmp_path):
    path = DATA / "ann_result_v1.json"
    result = AnnResult.load(path)
    assert result.ann_stage["seed"] == 0 and result.topology["rule"] == "set" and "train_s" in result.timing
    assert 0 <= result.ann_accuracy <= 1 and result.ann_val_accuracy is not None
    result.save(tmp_path / "ann_result.json")
    assert (tmp_path / "ann_result.json").read_bytes() == path.read_bytes()
    (tmp_path / "bad.json").write_text(json.dumps({"format": "sparse-convert/result"}))
    with pytest.raises(ValueError, match=r"bad.json is not a sparse-convert ANN-stage result$"):
        AnnResult.load(tmp_path / "bad.json")


def _edited(edit) -> dict:
    document = json.loads(FIXTURES["integrate"].read_text())
    edit(document)
    return document


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(format="sparse-convert/ann-result"), r"^{path} is not a sparse-convert result$"),
    (lambda d: d.pop("format"), r"^{path} is not a sparse-convert result$"),
    (lambda d: d.update(version=2), r"^{path} is a sparse-convert result of version 2; this sparse-convert reads "
                                    r"version 1 at most: upgrade it$"),
    (lambda d: d.pop("chosen"), r"^{path} lacks chosen: not a complete sparse-convert result$"),
    (lambda d: [d.pop("config"), d.pop("per_step")],
     r"^{path} lacks config, per_step: not a complete sparse-convert result$"),
    (lambda d: d["per_step"].pop("masfr"), r"^{path} lacks per_step.masfr: not a complete sparse-convert result$"),
    (lambda d: d["config"].pop("seed"), r"^{path} lacks config.seed: not a complete sparse-convert result$"),
    (lambda d: d.update(ann_accuracy="high"), r"^ann_accuracy in {path} must be a number, got 'high'$"),
    (lambda d: d.update(time_mode="later"), r"^time_mode in {path} must be one of 'integrate', 'window', got 'later'$"),
    (lambda d: d["chosen"].update(t=2.5), r"^chosen.t in {path} must be an integer, got 2.5$"),
    (lambda d: d["per_step"]["accuracy"].pop(), r"^{path}: the per_step lists differ in length \("),
    (lambda d: d["per_step"]["masfr"].__setitem__(2, None), r"^{path}: per_step.masfr has no value at t = 3 \(null\)"),
])
def test_a_bad_result_file_is_refused_with_one_line_naming_it(tmp_path, edit, message):
    path = tmp_path / "run" / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(_edited(edit)))
    pattern = message.format(path=str(path).replace(".", r"\."))
    with pytest.raises(ValueError, match=pattern):
        RunResult.load(path.parent)
    skipped = {}
    assert RunResult.collect(tmp_path, skipped) == [] and list(skipped) == [path]


def test_unreadable_files_name_themselves(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'result.json'} does not exist"):
        RunResult.load(tmp_path)
    (tmp_path / "result.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"result.json is not a sparse-convert result$"):
        RunResult.load(tmp_path)
    (tmp_path / "result.json").write_text('{"format": NaN}')
    with pytest.raises(ValueError, match=r"result.json is not valid JSON: NaN is not a JSON number"):
        RunResult.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="results folder"):
        RunResult.collect(tmp_path / "missing")


def test_save_refuses_a_result_that_load_would_refuse(tmp_path):
    result = make_run_result()
    result.per_step["energy_uj"] = result.per_step["energy_uj"][:-1]
    with pytest.raises(ValueError, match="per_step lists differ in length"):
        result.save(tmp_path / "result.json")
    assert not (tmp_path / "result.json").exists()
