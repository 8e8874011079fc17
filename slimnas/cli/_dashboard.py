"""``slimnas dashboard``: optuna-dashboard on a run's study, on a loopback address only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._options import as_options
from slimnas.report import check_loopback
from slimnas.report._dashboard import serve_dashboard
from slimnas.report._table import make_console


def dashboard_command(
    run: Annotated[Path, typer.Argument(help="A search run folder (runs/<name>).")],
    host: Annotated[str, typer.Option(help="Loopback address to listen on (127.0.0.1, ::1 or localhost).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Live view of a run's study in optuna-dashboard, reachable from this machine only (Ctrl-C stops it)."""
    console = make_console()
    with as_options("host", "port"):
        check_loopback(host)  # at the edge, before the study is opened
        serve_dashboard(run, host=host, port=port,
                        started=lambda url: console.print(f"optuna-dashboard on {run} at {url} (Ctrl-C stops it)",
                                                          highlight=False))
