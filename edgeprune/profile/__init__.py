"""Latency profiling on a runtime: timing statistics, per-layer profiles, reports.

Imports no torch and no runtime (runtimes are imported when a runner is opened).
"""

from edgeprune.profile.profiler import ProfileConfig, profile_model
from edgeprune.profile.report import (
    ReportError,
    format_report,
    load_report,
    validate_report,
)
from edgeprune.profile.stats import LatencyStats, MedianCI, median_ci, summarize

__all__ = [
    "LatencyStats",
    "MedianCI",
    "ProfileConfig",
    "ReportError",
    "format_report",
    "load_report",
    "median_ci",
    "profile_model",
    "summarize",
    "validate_report",
]
