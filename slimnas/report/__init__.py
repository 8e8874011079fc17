"""Reports: pure summaries of a run folder (a search run or a ``compress`` output) first,
rendering second (terminal tables, one self-contained HTML page, Markdown); the list of runs;
optuna-dashboard on a run."""

from slimnas.measure import metric_label
from slimnas.report import (
    _compress,  # noqa: F401 (loaded as before)
    _data,  # noqa: F401 (loaded as before)
    _explain,  # noqa: F401 (loaded as before)
    _figures,  # noqa: F401 (loaded as before)
    _html,  # noqa: F401 (loaded as before)
    _markdown,  # noqa: F401 (loaded as before)
    _progress,  # noqa: F401 (loaded as before)
    _report,  # noqa: F401 (loaded as before)
    _runs,  # noqa: F401 (loaded as before)
)
from slimnas.report._dashboard import check_loopback
from slimnas.report._table import arch_summary

__all__ = [
    "arch_summary",
    "check_loopback",
    "metric_label",
]
