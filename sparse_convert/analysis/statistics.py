"""The paper's tests on saturation times (§3.3), through ``scipy.stats``, with sample sizes and effect sizes.

* Wilcoxon signed-rank, one-sided, on paired (accuracy saturation time, MASFR saturation
  time) of the same runs: does accuracy saturate later than the firing rate?
* Mann-Whitney U, two-sided, on the time lags of sparse vs dense runs.

Only runs that integrate every step (``time_mode == "integrate"``: methods 1, 2, 4; the
paper uses 1 and 2) enter: an AEC run has a window size, not a time course, and no
saturation. Runs whose accuracy or MASFR curve never saturates have no time lag; they
are left out and counted, never given T_max.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats

from .saturation import result_saturation

#: Fewest pairs (Wilcoxon) or samples per group (Mann-Whitney) a test is run on.
MIN_SAMPLES = 2


@dataclass(frozen=True)
class WilcoxonTest:
    """One-sided (by default) Wilcoxon signed-rank test on paired samples ``x``, ``y`` (d = x − y).

    ``n`` counts all pairs and ``n_zero`` those with d = 0 (handled by ``zero_method``).
    ``effect_size`` is the matched-pairs rank-biserial correlation (R+ − R−) / (R+ + R−)
    over the same ranks the test uses: +1 when every nonzero d is positive.
    """

    statistic: float
    p_value: float
    n: int
    n_zero: int
    effect_size: float
    mean_difference: float
    median_difference: float
    alternative: str
    zero_method: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MannWhitneyTest:
    """Mann-Whitney U test of sample ``a`` against ``b``; ``statistic`` is U of ``a``.

    ``rank_biserial`` = 2·U/(n_a·n_b) − 1 = P(a > b) − P(a < b); ``common_language`` =
    U/(n_a·n_b) = P(a > b) + P(a = b)/2, for one value drawn from each sample.
    """

    statistic: float
    p_value: float
    n_a: int
    n_b: int
    rank_biserial: float
    common_language: float
    mean_a: float
    mean_b: float
    median_a: float
    median_b: float
    alternative: str

    def to_dict(self) -> dict:
        return asdict(self)


def _sample(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def wilcoxon_test(x: Sequence[float], y: Sequence[float], *, alternative: str = "greater",
                  zero_method: str = "wilcox", method: str = "auto") -> WilcoxonTest:
    """Wilcoxon signed-rank test of ``x − y`` via ``scipy.stats.wilcoxon``.

    Tied |d| share their average rank (scipy's rule; its ``method="auto"`` then switches
    from the exact null distribution to permutations or the normal approximation).
    Zero differences follow ``zero_method``: ``"wilcox"`` drops them, ``"pratt"`` ranks
    them and drops their ranks, ``"zsplit"`` splits their ranks between both signs.
    Raises ``ValueError`` with fewer than ``MIN_SAMPLES`` pairs or when every d is 0.
    """
    a, b = _sample(x, "x"), _sample(y, "y")
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    if len(a) < MIN_SAMPLES:
        raise ValueError(f"the Wilcoxon test needs at least {MIN_SAMPLES} pairs, got {len(a)}")
    d = a - b
    n_zero = int((d == 0).sum())
    if n_zero == len(d):
        raise ValueError(f"all {len(d)} paired differences are zero: the Wilcoxon test is undefined")
    if zero_method not in ("wilcox", "pratt", "zsplit"):
        raise ValueError(f"zero_method must be 'wilcox', 'pratt' or 'zsplit', got {zero_method!r}")
    result = stats.wilcoxon(a, b, zero_method=zero_method, alternative=alternative, method=method)
    return WilcoxonTest(float(result.statistic), float(result.pvalue), len(d), n_zero,
                        _matched_rank_biserial(d, zero_method), float(d.mean()), float(np.median(d)),
                        alternative, zero_method)


def _matched_rank_biserial(d: np.ndarray, zero_method: str) -> float:
    """(R+ − R−) / (R+ + R−) with the ranks of |d| that ``zero_method`` prescribes."""
    ranked = d[d != 0] if zero_method == "wilcox" else d
    ranks = stats.rankdata(np.abs(ranked))
    r_plus = ranks[ranked > 0].sum()
    r_minus = ranks[ranked < 0].sum()
    if zero_method == "zsplit":
        half = ranks[ranked == 0].sum() / 2
        r_plus, r_minus = r_plus + half, r_minus + half
    return float((r_plus - r_minus) / (r_plus + r_minus))


def mann_whitney_test(a: Sequence[float], b: Sequence[float], *, alternative: str = "two-sided",
                      method: str = "auto") -> MannWhitneyTest:
    """Mann-Whitney U test of ``a`` vs ``b`` via ``scipy.stats.mannwhitneyu``.

    Ties share their average rank; the normal approximation (used by ``"auto"`` when
    there are ties or many samples) is tie-corrected by scipy. Raises ``ValueError`` when
    a sample has fewer than ``MIN_SAMPLES`` values.
    """
    xa, xb = _sample(a, "a"), _sample(b, "b")
    if len(xa) < MIN_SAMPLES or len(xb) < MIN_SAMPLES:
        raise ValueError(f"the Mann-Whitney test needs at least {MIN_SAMPLES} values per sample, "
                         f"got {len(xa)} and {len(xb)}")
    result = stats.mannwhitneyu(xa, xb, alternative=alternative, method=method)
    u = float(result.statistic)
    pairs = len(xa) * len(xb)
    return MannWhitneyTest(u, float(result.pvalue), len(xa), len(xb), 2 * u / pairs - 1, u / pairs,
                           float(xa.mean()), float(xb.mean()), float(np.median(xa)), float(np.median(xb)),
                           alternative)


# -- from run results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaturationPair:
    """Accuracy and MASFR saturation times of one run."""

    run: str
    sparse: bool
    accuracy_t: int
    masfr_t: int

    @property
    def time_lag(self) -> int:
        return self.accuracy_t - self.masfr_t


@dataclass(frozen=True)
class SaturationSample:
    """The runs that enter the time-lag statistics, and how many were left out and why."""

    pairs: list[SaturationPair]
    excluded_window: int = 0
    unsaturated_runs: list[str] = field(default_factory=list)

    @property
    def excluded_unsaturated(self) -> int:
        """Runs left out because their accuracy or MASFR never saturates within T_max."""
        return len(self.unsaturated_runs)

    def of(self, sparse: bool | None) -> list[SaturationPair]:
        """The pairs of sparse (True), dense (False) or all (None) runs."""
        return [p for p in self.pairs if sparse is None or p.sparse == sparse]

    def lags(self, sparse: bool) -> list[int]:
        return [p.time_lag for p in self.of(sparse)]


def run_label(result: dict) -> str:
    """A short readable name of a run: model/dataset/method/sparsity/seed."""
    c = result["config"]
    return f"{c['model']}/{c['dataset']}/{c['method']}/s{c['sparsity']:g}/seed{c['seed']}"


def saturation_sample(results: Iterable[dict], **saturation_options: float) -> SaturationSample:
    """Saturation times of every integrate-mode run, from its ``per_step`` curves.

    ``saturation_options`` (``tolerance``, ``window``) go to ``result_saturation``; the
    defaults are the paper's and reproduce the runner's ``saturation`` block.
    """
    pairs, window, unsaturated = [], 0, []
    for r in results:
        block = result_saturation(r, **saturation_options)
        if block is None:
            window += 1
        elif block["time_lag"] is None:
            unsaturated.append(run_label(r))
        else:
            pairs.append(SaturationPair(run_label(r), r["config"]["sparsity"] > 0,
                                        block["accuracy"]["t"], block["masfr"]["t"]))
    return SaturationSample(pairs, window, unsaturated)


def saturation_order_test(sample: SaturationSample, sparse: bool | None = None, **options: str) -> WilcoxonTest:
    """One-sided Wilcoxon: accuracy saturates later than MASFR, over sparse, dense or all runs."""
    pairs = sample.of(sparse)
    return wilcoxon_test([p.accuracy_t for p in pairs], [p.masfr_t for p in pairs], **options)


def time_lag_test(sample: SaturationSample, **options: str) -> MannWhitneyTest:
    """Two-sided Mann-Whitney U on time lags, sparse (``a``) vs dense (``b``)."""
    return mann_whitney_test(sample.lags(True), sample.lags(False), **options)


# -- per-layer saturation (the paper's explanation of the time lag, §3.3) -------------------------


@dataclass(frozen=True)
class LayerSaturation:
    """Saturation times of one run: each spiking layer's firing rate by depth (the last is the layer the
    output reads), MASFR and accuracy."""

    run: str
    sparse: bool
    layers_t: tuple[int, ...]
    masfr_t: int
    accuracy_t: int

    @property
    def output_t(self) -> int:
        """Saturation time of the deepest spiking layer, the one whose spikes the output layer integrates."""
        return self.layers_t[-1]

    @property
    def others_t(self) -> int:
        """The latest saturation time among the other spiking layers."""
        return max(self.layers_t[:-1])


@dataclass(frozen=True)
class LayerSample:
    """Runs whose accuracy, MASFR and every spiking layer's firing rate saturate, and those left out."""

    runs: list[LayerSaturation]
    excluded_window: int = 0
    excluded_no_layers: int = 0  # results without per-layer curves, or with a single spiking layer
    unsaturated_runs: list[str] = field(default_factory=list)

    def of(self, sparse: bool | None) -> list[LayerSaturation]:
        return [r for r in self.runs if sparse is None or r.sparse == sparse]


def layer_saturation_sample(results: Iterable[dict], **saturation_options: float) -> LayerSample:
    """Per-layer saturation times of every integrate-mode run with two or more spiking layers."""
    runs, window, no_layers, unsaturated = [], 0, 0, []
    for r in results:
        block = result_saturation(r, **saturation_options)
        if block is None:
            window += 1
            continue
        layers = block.get("layers") or {}
        if len(layers) < 2:
            no_layers += 1
            continue
        times = [s["t"] for s in layers.values()]
        if block["time_lag"] is None or None in times:
            unsaturated.append(run_label(r))
            continue
        runs.append(LayerSaturation(run_label(r), r["config"]["sparsity"] > 0, tuple(times),
                                    block["masfr"]["t"], block["accuracy"]["t"]))
    return LayerSample(runs, window, no_layers, unsaturated)


@dataclass(frozen=True)
class PageTest:
    """Page's L test for a trend over ordered treatments (here: saturation time rising with depth).

    ``mean_spearman`` is the mean over runs of Spearman's ρ between depth and saturation time (a run
    whose layers all saturate at once counts 0): the effect size.
    """

    statistic: float
    p_value: float
    n: int
    depths: int
    mean_spearman: float

    def to_dict(self) -> dict:
        return asdict(self)


def depth_trend_test(times: Sequence[Sequence[int]]) -> PageTest:
    """Page's L test (``scipy.stats.page_trend_test``) that saturation time increases with depth; ``times``
    holds one row per run, one column per depth. Raises ``ValueError`` with fewer than 3 depths or 2 runs."""
    x = np.asarray(times, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 3 or x.shape[0] < MIN_SAMPLES:
        raise ValueError(f"Page's test needs at least {MIN_SAMPLES} runs of at least 3 layers each, got shape "
                         f"{x.shape}")
    result = stats.page_trend_test(x)
    depth = np.arange(x.shape[1])
    rhos = [0.0 if np.ptp(row) == 0 else float(stats.spearmanr(depth, row).statistic) for row in x]
    return PageTest(float(result.statistic), float(result.pvalue), len(x), x.shape[1], float(np.mean(rhos)))


def output_layer_tests(sample: LayerSample, sparse: bool | None = None) -> dict[str, WilcoxonTest | PageTest | str]:
    """The tests of "the output layer's firing rate stabilises after the model average" on ``sample``'s
    sparse, dense or all runs, by name; a test that cannot run gives the reason instead:

    * ``output_after_masfr``: one-sided Wilcoxon, deepest spiking layer's saturation time > MASFR's;
    * ``output_last``: one-sided Wilcoxon, deepest layer's time > the latest of the other layers';
    * ``accuracy_vs_output``: two-sided Wilcoxon, accuracy's time vs the deepest layer's;
    * ``depth_trend``: Page's L, saturation time rising with depth (runs of the most common depth).
    """
    runs = sample.of(sparse)
    tests: dict[str, WilcoxonTest | PageTest | str] = {}
    pairs = {"output_after_masfr": ([r.output_t for r in runs], [r.masfr_t for r in runs], "greater"),
             "output_last": ([r.output_t for r in runs], [r.others_t for r in runs], "greater"),
             "accuracy_vs_output": ([r.accuracy_t for r in runs], [r.output_t for r in runs], "two-sided")}
    for name, (x, y, alternative) in pairs.items():
        try:
            tests[name] = wilcoxon_test(x, y, alternative=alternative)
        except ValueError as err:
            tests[name] = str(err)
    depths = [len(r.layers_t) for r in runs]
    common = max(set(depths), key=depths.count) if depths else 0
    try:
        tests["depth_trend"] = depth_trend_test([r.layers_t for r in runs if len(r.layers_t) == common])
    except ValueError as err:
        tests["depth_trend"] = str(err)
    return tests
