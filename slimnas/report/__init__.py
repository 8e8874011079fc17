"""Reports: pure summaries of a run folder (a search run or a ``compress`` output) first,
rendering second (terminal tables, one self-contained HTML page, Markdown); the list of runs;
optuna-dashboard on a run."""

from slimnas.measure import metric_label
from slimnas.report._compress import compress_report_data, is_compress_output
from slimnas.report._dashboard import check_loopback, dashboard_storage, serve_dashboard
from slimnas.report._data import (
    baselines,
    card,
    format_value,
    report_data,
    table_keys,
    trial_row,
)
from slimnas.report._explain import (
    explanation_table,
    layer_columns,
    policy_summary,
    read_policy,
    sensitivity_table,
)
from slimnas.report._figures import (
    FRONT_TRACE,
    front_figure,
    front_figures,
    hover,
    layers_figure,
    progress_figure,
    sensitivity_figure,
)
from slimnas.report._html import render_html
from slimnas.report._markdown import render_markdown
from slimnas.report._progress import hypervolume_scales, progress, scaled_point
from slimnas.report._report import ReportFiles, write_report
from slimnas.report._runs import best_summary, runs_table
from slimnas.report._table import (
    arch_summary,
    front_columns,
    front_table,
    make_console,
    print_front,
)

__all__ = [
    "FRONT_TRACE",
    "ReportFiles",
    "arch_summary",
    "baselines",
    "best_summary",
    "card",
    "check_loopback",
    "compress_report_data",
    "dashboard_storage",
    "explanation_table",
    "format_value",
    "front_columns",
    "front_figure",
    "front_figures",
    "front_table",
    "hover",
    "hypervolume_scales",
    "is_compress_output",
    "layer_columns",
    "layers_figure",
    "make_console",
    "metric_label",
    "policy_summary",
    "print_front",
    "progress",
    "progress_figure",
    "read_policy",
    "render_html",
    "render_markdown",
    "report_data",
    "runs_table",
    "scaled_point",
    "sensitivity_figure",
    "sensitivity_table",
    "serve_dashboard",
    "table_keys",
    "trial_row",
    "write_report",
]
