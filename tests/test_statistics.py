"""The paper's tests (§3.3) against scipy.stats called directly, effect sizes by hand, and which runs enter."""

import numpy as np
import pytest
from scipy import stats
from synthetic_results import make_result

from sparse_convert.analysis.saturation import result_saturation, saturation_block
from sparse_convert.analysis.statistics import (
    mann_whitney_test,
    saturation_order_test,
    saturation_sample,
    time_lag_test,
    wilcoxon_test,
)

RNG = np.random.default_rng(7)


def test_wilcoxon_matches_scipy_on_continuous_samples():
    x, y = RNG.normal(12, 3, 40), RNG.normal(10, 3, 40)
    ours = wilcoxon_test(x, y)
    ref = stats.wilcoxon(x, y, alternative="greater")
    assert ours.statistic == ref.statistic and ours.p_value == ref.pvalue
    assert ours.n == 40 and ours.n_zero == 0 and ours.alternative == "greater"


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_with_ties_and_zero_differences_matches_scipy(zero_method):
    acc_t = RNG.integers(5, 30, 60)  # integer saturation times: many tied |d| and some d = 0
    masfr_t = acc_t - RNG.integers(-2, 6, 60)
    ours = wilcoxon_test(acc_t, masfr_t, zero_method=zero_method)
    ref = stats.wilcoxon(acc_t, masfr_t, zero_method=zero_method, alternative="greater")
    assert ours.statistic == pytest.approx(ref.statistic) and ours.p_value == pytest.approx(ref.pvalue)
    assert ours.n_zero == int((acc_t == masfr_t).sum()) > 0


def test_matched_pairs_rank_biserial_by_hand():
    # d = [3, -1, 2, 0]: 'wilcox' drops the zero; |d| ranks 3, 1, 2 → R+ = 5, R- = 1 → r = 4/6
    assert wilcoxon_test([3, 0, 2, 5], [0, 1, 0, 5]).effect_size == pytest.approx(4 / 6)
    # 'pratt' ranks the zero too (rank 1, then dropped): ranks 4, 2, 3 → (7 - 2) / 9
    assert wilcoxon_test([3, 0, 2, 5], [0, 1, 0, 5], zero_method="pratt").effect_size == pytest.approx(5 / 9)
    # 'zsplit' gives half the zero's rank to each side: R+ = 7.5, R- = 2.5 → 5 / 10
    assert wilcoxon_test([3, 0, 2, 5], [0, 1, 0, 5], zero_method="zsplit").effect_size == pytest.approx(0.5)
    assert wilcoxon_test([5, 6, 7], [1, 1, 1]).effect_size == 1.0


def test_wilcoxon_refuses_too_few_or_all_zero_differences():
    with pytest.raises(ValueError, match="at least 2 pairs, got 1"):
        wilcoxon_test([3], [1])
    with pytest.raises(ValueError, match="all 3 paired differences are zero"):
        wilcoxon_test([4, 5, 6], [4, 5, 6])
    with pytest.raises(ValueError, match="same length, got 3 and 2"):
        wilcoxon_test([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        wilcoxon_test([1, float("nan")], [0, 0])


def test_mann_whitney_matches_scipy_with_ties():
    sparse, dense = RNG.integers(0, 12, 35), RNG.integers(-3, 8, 50)
    ours = mann_whitney_test(sparse, dense)
    ref = stats.mannwhitneyu(sparse, dense, alternative="two-sided")
    assert ours.statistic == ref.statistic and ours.p_value == ref.pvalue
    assert (ours.n_a, ours.n_b) == (35, 50)
    assert ours.mean_a == pytest.approx(sparse.mean()) and ours.median_b == np.median(dense)


def test_mann_whitney_effect_sizes_by_hand():
    # a = [1, 3], b = [2, 2]: pairs (1,2) (1,2) lose, (3,2) (3,2) win → U = 2, CL = 0.5, r = 0
    t = mann_whitney_test([1, 3], [2, 2])
    assert (t.statistic, t.common_language, t.rank_biserial) == (2.0, 0.5, 0.0)
    # a = [3, 2], b = [2, 1]: wins (3,2) (3,1) (2,1), tie (2,2) counts half → U = 3.5
    t = mann_whitney_test([3, 2], [2, 1])
    assert t.common_language == pytest.approx(3.5 / 4) and t.rank_biserial == pytest.approx(0.75)


def test_mann_whitney_refuses_too_few_samples():
    with pytest.raises(ValueError, match="at least 2 values per sample, got 5 and 1"):
        mann_whitney_test([1, 2, 3, 4, 5], [1])


def test_only_integrate_runs_with_both_curves_saturated_enter_and_the_rest_are_counted():
    results = [make_result(acc_t=12, masfr_t=5), make_result(sparsity=0.9, acc_t=15, masfr_t=4),
               make_result(method="aec"), make_result(method="aec", sparsity=0.9),
               make_result(acc_t=None, masfr_t=4), make_result(method="snm", acc_t=9, masfr_t=None)]
    sample = saturation_sample(results)
    assert [(p.sparse, p.accuracy_t, p.masfr_t, p.time_lag) for p in sample.pairs] == [(False, 12, 5, 7),
                                                                                     (True, 15, 4, 11)]
    assert sample.excluded_window == 2 and sample.excluded_unsaturated == 2
    assert sample.unsaturated_runs == ["mlp/digits/qcfs/s0/seed0", "mlp/digits/snm/s0/seed0"]


def test_tests_on_results_use_the_right_pairs_and_groups():
    dense = [make_result(seed=s, acc_t=a, masfr_t=m) for s, (a, m) in enumerate([(10, 4), (12, 5), (9, 9), (11, 3)])]
    sparse = [make_result(sparsity=0.9, seed=s, acc_t=a, masfr_t=m)
              for s, (a, m) in enumerate([(15, 4), (16, 5), (14, 3)])]
    sample = saturation_sample(dense + sparse)
    t = saturation_order_test(sample, sparse=False)
    ref = stats.wilcoxon([10, 12, 9, 11], [4, 5, 9, 3], alternative="greater")
    assert (t.statistic, t.p_value, t.n, t.n_zero) == (ref.statistic, ref.pvalue, 4, 1)
    assert saturation_order_test(sample).n == 7
    lag = time_lag_test(sample)
    ref = stats.mannwhitneyu([11, 11, 11], [6, 7, 0, 8], alternative="two-sided")
    assert (lag.statistic, lag.p_value, lag.n_a, lag.n_b) == (ref.statistic, ref.pvalue, 3, 4)


def test_saturation_block_of_a_result_matches_its_curves():
    r = make_result(acc_t=12, masfr_t=5)
    block = result_saturation(r)
    assert block["accuracy"]["t"] == 12 and block["masfr"]["t"] == 5 and block["time_lag"] == 7
    assert block == saturation_block(r["per_step"]["accuracy"], r["per_step"]["masfr"])
    assert result_saturation(make_result(method="aec")) is None
    assert result_saturation(r, window=25)["accuracy"]["saturated"] is False  # 32 - 12 < 25 flat steps
