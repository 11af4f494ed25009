"""Method options: FitConfig's training fields are inherited, not re-declared, and old flat options still load."""

import dataclasses
from dataclasses import dataclass

import pytest

from sparse_convert.methods import BiasOnce, get_method
from sparse_convert.methods.base import FIT_FIELDS, FineTuneOptions
from sparse_convert.training import FitConfig
from sparse_convert.typecheck import declared_types

FINE_TUNING = ("qcfs", "aec", "spikezip")


@pytest.mark.parametrize("name", FINE_TUNING)
def test_fine_tuning_options_are_fitconfigs_with_fitconfigs_types(name):
    options_type = get_method(name).Options
    assert issubclass(options_type, FineTuneOptions) and issubclass(options_type, FitConfig)
    fields = [f.name for f in dataclasses.fields(options_type)]
    assert fields[:len(FIT_FIELDS)] == list(FIT_FIELDS)
    hints, fit_hints = declared_types(options_type), declared_types(FitConfig)
    assert all(hints[f] == fit_hints[f] for f in FIT_FIELDS)


@pytest.mark.parametrize("name,options,stage", [
    ("qcfs", {"lr": 0.02, "batch_size": 32, "layer_epochs": 3, "channel_epochs": 1, "optimizer": "adam"},
     FitConfig(epochs=3, lr=0.02, batch_size=32, optimizer="adam")),
    ("aec", {"lr": 1e-3, "batch_size": 16, "epochs": 2, "optimizer": "sgd", "windows": [2, 4]},
     FitConfig(epochs=2, lr=1e-3, batch_size=16, optimizer="sgd", weight_decay=0.0)),
    ("spikezip", {"lr": 1e-4, "epochs": 1, "weight_decay": 0.05, "levels": 8},
     FitConfig(epochs=1, lr=1e-4, weight_decay=0.05, optimizer="adamw")),
])
def test_flat_options_written_by_earlier_runs_still_load(name, options, stage):
    method = get_method(name)(**options)
    fit = method.options.fit_config(method.options.layer_epochs) if name == "qcfs" else method.options.fit_config()
    assert fit == stage


def test_defaults_are_the_methods_own_not_the_ann_trainings():
    qcfs, aec, spikezip = (get_method(n)().options for n in FINE_TUNING)
    assert (qcfs.lr, qcfs.optimizer, qcfs.weight_decay) == (0.01, "sgd", 5e-4)
    assert (aec.lr, aec.optimizer, aec.weight_decay) == (1e-2, "adam", 0.0)
    assert (spikezip.lr, spikezip.optimizer, spikezip.weight_decay) == (1e-3, "adamw", 0.0)
    assert FitConfig().lr == 0.05  # untouched by the methods' defaults


def test_qcfs_epochs_sets_both_stages_unless_a_stage_sets_its_own():
    opts = get_method("qcfs")(epochs=4, channel_epochs=2).options
    assert (opts.fit_config(opts.layer_epochs).epochs, opts.fit_config(opts.channel_epochs).epochs) == (4, 2)
    assert get_method("qcfs").with_stage_epochs(3) == {"layer_epochs": 3, "channel_epochs": 3}


@pytest.mark.parametrize("name,options,message", [
    ("qcfs", {"optimizer": "bogus"}, "optimizer must be one of"),
    ("aec", {"lr": 0.0}, "lr must be a positive number"),
    ("spikezip", {"epochs": -1}, "epochs must be >= 0"),
    ("qcfs", {"channel_epochs": -1}, "channel_epochs must be >= 0"),
    ("aec", {"momentum": "high"}, "option momentum of method 'aec' must be a number"),
    ("qcfs", {"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\], got 1.5"),
    ("spikezip", {"weight_decay": -0.1}, "weight_decay must be a finite number >= 0"),
    ("aec", {"momentum": float("nan")}, "momentum must be a finite number >= 0"),
    ("qcfs", {"lr": -1.0}, "lr must be a positive number"),
    ("aec", {"optimizer": "bogus"}, "optimizer must be one of"),
    ("aec", {"batch_size": 0}, "batch_size must be >= 1"),
    ("spikezip", {"optimizer": "bogus"}, "optimizer must be one of"),
    ("qcfs", {"layer_epochs": -1}, "layer_epochs must be >= 0"),
])
def test_training_fields_are_checked_at_construction(name, options, message):
    with pytest.raises(ValueError, match=message):
        get_method(name)(**options)


def test_fit_defaults_must_name_fitconfig_fields():
    with pytest.raises(TypeError, match=r"names \['lrate'\]"):
        @dataclass
        class Bad(FineTuneOptions):
            fit_defaults = {"lrate": 0.1}


def test_a_subclass_of_a_methods_options_keeps_its_defaults():
    @dataclass
    class More(get_method("spikezip").Options):
        extra: int = 1

    assert (More().lr, More().optimizer, More(lr=0.5).fit_config().lr) == (1e-3, "adamw", 0.5)


def test_bias_once_lives_with_the_graph_edits():
    from sparse_convert.methods import transforms

    assert BiasOnce is transforms.BiasOnce and callable(transforms.move_bias_to_first_step)
