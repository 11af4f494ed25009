"""Dynamic sparse training schedulers (cht, set, rigl): counts, zeros, schedules, resumption."""

import io
import json

import pytest
import torch
from torch import nn

from sparse_convert.topology import (
    available_topologies,
    build_topology,
    ch2_l3n_scores,
    get_mask,
    masked_layers,
)

DST = ["cht", "set", "rigl"]
STEPS = 40
OPTIMIZERS = {
    "sgd-momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
}


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 5))


def cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 3 * 3, 5))


def batches(model: nn.Module, n: int = STEPS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(123)
    shape = (20,) if isinstance(model[1], nn.Linear) else (2, 6, 6)
    return [(torch.randn(16, *shape, generator=g), torch.randint(0, 5, (16,), generator=g)) for _ in range(n)]


def setup(rule: str, model: nn.Module, make_opt=OPTIMIZERS["sgd-momentum"], **options):
    opt = make_opt(model.parameters())
    options = {"update_interval": 5, **options} if rule in DST else options
    return opt, build_topology(rule, model, opt, 0.8, total_steps=STEPS, seed=7, **options)


def train_step(model, opt, sched, batch) -> None:
    x, y = batch
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    sched.step()


def links(model: nn.Module) -> dict[str, int]:
    return {n: int(get_mask(m).sum()) for n, m in masked_layers(model).items()}


def test_all_rules_are_registered():
    assert set(available_topologies()) >= {"static", "cht", "set", "rigl", "magnitude", "depgraph"}


@pytest.mark.parametrize("make_model", [mlp, cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("rule", DST)
def test_every_layer_keeps_its_link_count_after_each_step(rule, make_model):
    model = make_model()
    opt, sched = setup(rule, model)
    start = links(model)
    for batch in batches(model):
        train_step(model, opt, sched, batch)
        assert links(model) == start
    assert len(sched.history) == 5  # steps 5, 10, ..., 25 < 30 = 0.75 · 40
    for update in sched.history:
        for record in update["layers"].values():
            assert record["shortfall"] == 0
            assert record["regrown"] == record["removed"] + record["percolated"]
        assert any(record["changed"] > 0 for record in update["layers"].values())


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("rule", DST)
def test_removed_and_regrown_links_have_zero_weight_and_optimizer_state(rule, opt_name):
    model = mlp()
    opt, sched = setup(rule, model, OPTIMIZERS[opt_name])
    for batch in batches(model):
        before = {n: get_mask(m).clone() for n, m in masked_layers(model).items()}
        updates = len(sched.history)
        train_step(model, opt, sched, batch)
        for name, layer in masked_layers(model).items():
            mask = get_mask(layer)
            state = [v for v in opt.state[layer.weight].values() if torch.is_tensor(v) and v.shape == mask.shape]
            assert len(state) >= 1
            zero = ~mask
            if len(sched.history) > updates:  # this step updated: new links start from scratch too
                grown = mask & ~before[name]
                assert grown.any()
                zero = zero | grown
            assert (layer.weight[zero] == 0).all()
            for value in state:
                assert (value[zero] == 0).all()


@pytest.mark.parametrize("rule,options", [
    ("cht", {}), ("cht", {"regrow": "topk"}), ("set", {}), ("rigl", {}),
    ("magnitude", {"rounds": 3, "start": 0.25}), ("static", {}),
])
def test_resuming_from_state_dicts_repeats_the_masks_bit_for_bit(rule, options):
    model = mlp()
    data = batches(model)
    opt, sched = setup(rule, model, OPTIMIZERS["adamw"], **options)
    for batch in data[:17]:
        train_step(model, opt, sched, batch)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buffer)
    for batch in data[17:]:
        train_step(model, opt, sched, batch)

    resumed = mlp(seed=99)  # different initial weights and masks, all overwritten by the saved state
    opt2, sched2 = setup(rule, resumed, OPTIMIZERS["adamw"], **options)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    for batch in data[17:]:
        train_step(resumed, opt2, sched2, batch)

    assert sched2.history == sched.history
    for (name, layer), twin in zip(masked_layers(model).items(), masked_layers(resumed).values()):
        assert torch.equal(get_mask(layer), get_mask(twin)), name
        assert torch.equal(layer.weight, twin.weight), name


def test_summary_records_rule_density_and_changes_per_update_as_json():
    model = mlp()
    opt, sched = setup("cht", model)
    for batch in batches(model):
        train_step(model, opt, sched, batch)
    summary = json.loads(json.dumps(sched.summary()))
    assert summary["rule"] == "cht"
    assert summary["density"]["layers"] == {"1": pytest.approx(0.2), "3": pytest.approx(0.2), "5": 1.0}
    assert summary["options"]["update_interval"] == 5 and summary["options"]["regrow"] == "soft"
    assert [u["step"] for u in summary["updates"]] == [5, 10, 15, 20, 25]
    assert set(summary["updates"][0]["layers"]["1"]) == {"removed", "percolated", "regrown", "shortfall", "changed"}


def test_cht_anneals_zeta_by_cosine_and_raises_tau():
    model = mlp()
    opt, sched = setup("cht", model, end=0.5)  # t_end = 20
    for batch in batches(model):
        train_step(model, opt, sched, batch)
    assert [u["step"] for u in sched.history] == [5, 10, 15]
    assert [u["zeta"] for u in sched.history] == pytest.approx([0.15 * (1 + c) for c in (0.5 ** 0.5, 0, -(0.5 ** 0.5))])
    assert [u["tau"] for u in sched.history] == pytest.approx([1.5, 2.0, 2.5])
    assert sched.drop_fraction(0) == pytest.approx(0.3)


def test_set_uses_a_constant_zeta_and_no_percolation():
    model = mlp()
    opt, sched = setup("set", model)
    for batch in batches(model):
        train_step(model, opt, sched, batch)
    layers = sched.history[0]["layers"]
    assert all(u["zeta"] == 0.3 for u in sched.history)
    assert layers["1"]["removed"] == int(0.3 * 120) and layers["1"]["percolated"] == 0


def test_cht_regrowth_takes_the_best_ch_scores_with_topk():
    model = mlp()
    _, sched = setup("cht", model, regrow="topk")
    layer = model[3]
    mask = get_mask(layer).clone()
    scores = ch2_l3n_scores(mask)
    grown = sched.regrow("3", layer, mask, 10)
    assert int(grown.sum()) == 10 and not (grown & mask).any()
    assert scores[grown].min() >= scores[~mask & ~grown].max()


def test_cht_soft_regrowth_samples_positive_scores_and_falls_back_when_they_run_short():
    model = mlp()
    _, sched = setup("cht", model)
    layer = model[3]
    mask = torch.zeros(30, 30, dtype=torch.bool)
    mask[0, :2] = mask[1, 0] = True   # only (1, 1) has a length-3 path: 0-1 ... 1-0-0-1
    scores = ch2_l3n_scores(mask)
    assert int((scores > 0).sum()) == 1
    assert sched.regrow("3", layer, mask, 1)[1, 1]
    grown = sched.regrow("3", layer, mask, 50)  # 49 must come from zero-score candidates
    assert int(grown.sum()) == 50 and not (grown & mask).any()


def test_rigl_captures_the_dense_gradient_and_regrows_where_it_is_largest():
    model = mlp()
    opt, sched = setup("rigl", model)
    data = batches(model)
    for batch in data[:4]:
        train_step(model, opt, sched, batch)
    x, y = data[4]
    opt.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()  # iteration 5 ends with an update
    layer, mask = model[3], get_mask(model[3]).clone()
    dense = sched._dense_grad["3"].clone()
    assert (dense[~mask] != 0).any()  # gradient of links that do not exist yet
    opt.step()
    assert (layer.weight.grad[~mask] == 0).all()  # the mask hook zeroed them in .grad
    sched._dense_grad["3"] = dense
    grown = sched.regrow("3", layer, mask, 7)
    assert dense.abs()[grown].min() >= dense.abs()[~mask & ~grown].max()


def test_cht_csti_starts_from_the_most_correlated_input_pairs():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(500, 4, generator=g)
    inputs = torch.cat([base, base + 0.01 * torch.randn(500, 4, generator=g)], dim=1)  # feature f ~ f + 4
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    build_topology("cht", model, None, 0.875, total_steps=10, init_topology="csti", csti_inputs=inputs)
    mask = get_mask(model[0])
    expected = torch.zeros(8, 8, dtype=torch.bool)
    for f in range(4):
        expected[f, f + 4] = expected[f + 4, f] = True
    assert torch.equal(mask, expected)


def test_cht_magnitude_start_keeps_the_largest_pretrained_weights_and_their_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3))
    before = [model[i].weight.detach().clone() for i in (0, 2, 4)]
    sched = build_topology("cht", model, None, 0.75, total_steps=10, init_topology="magnitude")
    for layer, w in zip((model[0], model[2]), before):
        mask = get_mask(layer)
        keep = round(0.25 * w.numel())
        assert int(mask.sum()) == keep
        assert w.abs()[mask].min() >= w.abs()[~mask].max()  # the largest |w| survive
        assert torch.equal(layer.weight.detach()[mask], w[mask]) and (layer.weight.detach()[~mask] == 0).all()
    assert get_mask(model[4]) is None and torch.equal(model[4].weight.detach(), before[2])  # classifier dense
    assert sched.summary()["options"]["init"] == "keep"


@pytest.mark.parametrize("options,message", [
    ({"zeta": 1.0}, r"zeta must be in \[0, 1\), got 1.0"),
    ({"update_interval": 0}, "update_interval must be an integer >= 1, got 0"),
    ({"anneal": "linear"}, "anneal must be one of"),
    ({"regrow": "best"}, "regrow must be 'soft' or 'topk', got 'best'"),
    ({"init_topology": "largest"}, "init_topology must be one of"),
    ({"init_topology": "csti"}, "needs csti_inputs"),
    ({"colour": "red"}, "bad options for topology 'cht'"),
])
def test_bad_options_are_rejected_by_name(options, message):
    with pytest.raises(ValueError, match=message):
        build_topology("cht", mlp(), None, 0.8, total_steps=10, **options)


def test_cosine_annealing_needs_the_training_length():
    with pytest.raises(ValueError, match="anneal='cosine' needs total_steps > 0, got 0"):
        build_topology("rigl", mlp(), None, 0.8)
    sched = build_topology("set", mlp(), None, 0.8)  # constant ζ: updates forever
    assert sched.update_due(10 ** 6)


def test_sparsity_zero_leaves_the_model_dense():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = build_topology("cht", model, opt, 0.0, total_steps=STEPS, update_interval=5)
    for batch in batches(model):
        train_step(model, opt, sched, batch)
    assert masked_layers(model) == {} and sched.history == []
