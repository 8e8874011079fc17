"""``slimnas report``: a run's report, written next to it; prints where."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.report import make_console, write_report


def report_command(
    run: Annotated[Path, typer.Argument(help="A search run folder (runs/<name>).")],
    out: Annotated[Path | None, typer.Option(help="Folder to write the report into (default: the run folder).")] = None,
) -> None:
    """Write report.html (self-contained, opens offline), report.json and report.md for a search run."""
    files = write_report(run, out)
    console = make_console()
    console.print(f"wrote {files.json} and {files.markdown}", style="dim")
    console.print(str(files.html), soft_wrap=True, highlight=False)
