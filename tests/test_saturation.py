"""Saturation time (paper §2.3.2) and time lag (Eq. 3) on hand-built curves."""

import pytest

from sparse_convert.analysis import best_window, relative_improvements, saturation_time, time_lag


def test_step_curve_saturates_at_the_step():
    curve = [0.1] * 4 + [0.9] * 20  # jumps into step 5, flat after
    sat = saturation_time(curve)
    assert sat.saturated and sat.t == 5 and sat.value == 0.9


def test_curve_saturating_at_a_known_step():
    # improvements of 5 % until step 12, then 0.5 % forever: the last big rise is into step 12
    curve = [1.0]
    for t in range(2, 40):
        curve.append(curve[-1] * (1.05 if t <= 12 else 1.005))
    assert saturation_time(curve).t == 12
    assert saturation_time(curve, tolerance=0.004).saturated is False


def test_noisy_plateau_counts_decreases_as_flat():
    curve = [0.2, 0.5, 0.8, 0.9, 0.95] + [0.95, 0.951, 0.949, 0.955, 0.95, 0.952] * 3
    assert saturation_time(curve).t == 5


def test_a_curve_that_keeps_improving_never_saturates_and_says_so():
    curve = [1.02**t for t in range(64)]
    sat = saturation_time(curve)
    assert not sat.saturated and sat.t is None and sat.value is None


def test_window_must_fit_inside_the_curve():
    assert not saturation_time([0.5] * 10, window=10).saturated  # only 9 improvements exist
    assert saturation_time([0.5] * 11, window=10).t == 1


def test_curve_that_reaches_zero_and_stays():
    curve = [0.4, 0.2, 0.0] + [0.0] * 12
    rel = relative_improvements(curve)
    assert rel[:2].tolist() == [-0.5, -1.0] and (rel[2:] == 0).all()
    assert saturation_time(curve).t == 1


def test_rise_from_zero_is_an_infinite_improvement():
    curve = [0.0, 0.0, 0.3] + [0.3] * 12
    assert relative_improvements(curve)[1] == float("inf")
    assert saturation_time(curve).t == 3


def test_window_and_tolerance_are_parameters():
    curve = [1, 2, 3, 3.02, 3.04, 3.06, 3.07, 3.08, 3.09]
    assert saturation_time(curve, window=3).t == 3
    assert saturation_time(curve, window=3, tolerance=0.001).saturated is False
    with pytest.raises(ValueError, match="window"):
        saturation_time(curve, window=0)
    with pytest.raises(ValueError, match="NaN"):
        saturation_time([1.0, float("nan")])


def test_time_lag_signs():
    acc = saturation_time([0.1] * 7 + [0.9] * 20)      # t = 8
    rate = saturation_time([0.1] * 2 + [0.3] * 25)     # t = 3
    assert time_lag(acc, rate) == 5
    assert time_lag(rate, acc) == -5
    assert time_lag(acc, acc) == 0
    never = saturation_time([1.1**t for t in range(30)])
    assert time_lag(acc, never) is None


def test_a_latency_plateau_before_the_rise_is_not_saturation():
    # a deep SNN: output silent (accuracy at chance) for 15 steps, then rising, flat from step 19
    curve = [0.1] * 15 + [0.3, 0.6, 0.8, 0.9] + [0.9] * 30
    sat = saturation_time(curve)
    assert sat.t == 19 and sat.value == 0.9
    assert saturation_time(curve, skip_latency=False).t == 1  # the literal rule
    assert saturation_time([0.5] * 20).t == 1  # constant throughout: saturated from the start
    falling = [0.5] * 12 + [0.4] * 20  # a first change that is a decrease is no latency
    assert saturation_time(falling).t == saturation_time(falling, skip_latency=False).t == 1


def test_best_window_picks_highest_accuracy_then_smallest_t():
    assert best_window([2, 4, 8, 16], [0.5, 0.9, 0.9, 0.8]) == (4, 0.9)
