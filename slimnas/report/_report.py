"""``slimnas report``: a run's report data written as ``report.json``, ``report.md`` and one
self-contained ``report.html``; for a ``compress`` output, ``report.html`` and ``report.md`` beside
the ``report.json`` that compress wrote (left as it is)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from slimnas._files import check_not_interrupted
from slimnas.report import _tabular
from slimnas.report._compress import (
    compress_report_data,
    is_compress_output,
    render_compress_html,
    render_compress_markdown,
)
from slimnas.report._data import report_data
from slimnas.report._html import render_html
from slimnas.report._markdown import render_markdown
from slimnas.report._tabular import is_tabular_run, tabular_data
from slimnas.study._artifacts import write_json


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written, and the data it shows."""

    html: Path
    json: Path | None  # None for a compress output: its own report.json holds the figures
    markdown: Path
    data: dict


def write_report(folder: str | Path, out: str | Path | None = None) -> ReportFiles:
    """Write the report of the search run or ``compress`` output in ``folder`` into ``out``
    (default: that folder).

    Example:
        >>> write_report("runs/my-study").html  # doctest: +SKIP
        PosixPath('runs/my-study/report.html')
    """
    check_not_interrupted(folder)  # a compress output cut short while being replaced: never read half of it
    out = Path(out) if out is not None else Path(folder)
    if is_compress_output(folder):
        data = compress_report_data(folder)
        out.mkdir(parents=True, exist_ok=True)
        files = ReportFiles(out / "report.html", None, out / "report.md", data)
        files.markdown.write_text(render_compress_markdown(data) + "\n")
        files.html.write_text(render_compress_html(data), encoding="utf-8")
        return files
    tabular = is_tabular_run(folder)  # a search on a table: the regret view (report/_tabular.py)
    data = tabular_data(folder) if tabular else report_data(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(out / "report.html", out / "report.json", out / "report.md", data)
    write_json(files.json, json.loads(json.dumps(data)))
    files.markdown.write_text((_tabular.render_markdown if tabular else render_markdown)(data) + "\n")
    files.html.write_text((_tabular.render_html if tabular else render_html)(data), encoding="utf-8")
    return files
