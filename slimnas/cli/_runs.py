"""``slimnas runs``: the runs in a folder, with their status, progress and best model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._options import as_options
from slimnas.report._runs import runs_table
from slimnas.report._table import make_console
from slimnas.study import list_runs


def runs_command(
    root: Annotated[Path, typer.Option(help="Folder holding the run folders.")] = Path("runs"),
) -> None:
    """List past runs: name, status, trials done, best model, folder."""
    if root == Path("runs") and not root.exists():  # the default, where no search has run yet
        make_console().print(f"no runs here ({Path.cwd()} has no runs/ folder)", soft_wrap=True, highlight=False)
        return
    with as_options("root"):
        summaries = list_runs(root)
    console = make_console()
    if not summaries:
        console.print(f"no runs in {root}")
        return
    n = len(summaries)
    console.print(runs_table(summaries, f"{n} run{'s' if n != 1 else ''} in {root}"))
