"""``slimnas report``: a run's report, written next to it; prints where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._options import Out
from slimnas.report._report import write_report
from slimnas.report._table import make_console


def report_command(
    run: Annotated[Path, typer.Argument(help="A search run folder (runs/<name>) or a compress output folder.")],
    out: Out = None,
) -> None:
    """Write report.html (self-contained, opens offline), report.json and report.md for a search run;
    report.html and report.md for a compress output (its report.json is compress's own)."""
    files = write_report(run, out)
    console = make_console()
    console.print(f"wrote {' and '.join(str(p) for p in (files.json, files.markdown) if p is not None)}", style="dim")
    console.print(str(files.html), soft_wrap=True, highlight=False)
