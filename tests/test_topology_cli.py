"""``sparse-convert run --topology RULE --topology-opt k=v`` reaches the scheduler and result.json."""

from importlib.util import find_spec

import pytest

from sparse_convert.cli import main
from sparse_convert.experiments import load_result


@pytest.mark.parametrize("rule,options,updates", [
    ("cht", ["update_interval=5", "regrow=topk"], 2),  # 18 steps (1144 images): updates at 5, 10 < 0.75 · 18
    ("magnitude", ["start=0.5"], 1),
    pytest.param("depgraph", ["start=0.5"], 1,
                 marks=pytest.mark.skipif(find_spec("torch_pruning") is None, reason="torch-pruning not installed")),
])
def test_run_trains_with_the_named_topology_and_records_it(rule, options, updates, tmp_path):
    extra = [arg for opt in options for arg in ("--topology-opt", opt)]
    code = main(["run", "--topology", rule, *extra, "--sparsity", "0.9", "--epochs", "1", "--t-max", "2",
                 "--quiet", "--out", str(tmp_path)])
    assert code == 0
    topology = load_result(tmp_path)["topology"]
    assert topology["rule"] == rule
    assert len(topology["updates"]) == updates
    layers = topology["density"]["layers"]
    if rule == "depgraph":  # whole neurons: network-wise density at most what 90 % layer-wise sparsity gives
        assert topology["density"]["links"] <= round(0.1 * (64 + 256 + 256) * 256) + 256 * 10
    else:
        assert layers == {"1": pytest.approx(0.1, abs=1e-3), "3": pytest.approx(0.1, abs=1e-3),
                          "5": pytest.approx(0.1, abs=1e-3), "7": 1.0}


def test_unknown_topology_option_is_an_error_naming_it(tmp_path, capsys):
    code = main(["run", "--topology", "set", "--topology-opt", "colour=red", "--sparsity", "0.9", "--epochs", "1",
                 "--t-max", "2", "--quiet", "--out", str(tmp_path / "bad")])
    assert code == 2
    assert "bad options for topology 'set'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
