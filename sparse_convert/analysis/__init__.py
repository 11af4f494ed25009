"""Analysis of run results: saturation and time lag, tables and figures. Functions return values;
writing files is left to the caller."""

from .saturation import Saturation, best_window, relative_improvements, saturation_time, time_lag

__all__ = ["Saturation", "best_window", "relative_improvements", "saturation_time", "time_lag"]
