"""Analysis of run results: saturation and time lag, statistics, model selection, tables, figures and the
report. Functions return values; writing files is left to the caller (``report.write_report``)."""

from .saturation import (
    Saturation,
    best_window,
    layer_curves,
    relative_improvements,
    result_saturation,
    saturation_block,
    saturation_time,
    time_lag,
)
from .selection import Selection, best_runs, select_best
from .statistics import (
    LayerSample,
    MannWhitneyTest,
    PageTest,
    SaturationSample,
    WilcoxonTest,
    depth_trend_test,
    layer_saturation_sample,
    mann_whitney_test,
    output_layer_tests,
    saturation_order_test,
    saturation_sample,
    time_lag_test,
    wilcoxon_test,
)

__all__ = ["LayerSample", "MannWhitneyTest", "PageTest", "Saturation", "SaturationSample", "Selection",
           "WilcoxonTest", "best_runs", "best_window", "depth_trend_test", "layer_curves", "layer_saturation_sample",
           "mann_whitney_test", "output_layer_tests", "relative_improvements", "result_saturation",
           "saturation_block", "saturation_order_test", "saturation_sample", "saturation_time", "select_best",
           "time_lag", "time_lag_test", "wilcoxon_test"]
