"""Command line: thin commands, each calling one library function.

User mistakes (:class:`slimnas.errors.SlimnasError`) print one line and exit 2, no traceback.
"""

from __future__ import annotations

import sys

import typer

from slimnas.cli._search import search_command
from slimnas.errors import SlimnasError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="slimnas: architecture search and model compression under a deployment budget.")


@app.callback()
def _root() -> None:
    """slimnas: architecture search and model compression under a deployment budget."""


app.command("search")(search_command)

try:  # the compress command lives with the compression toolkit
    from slimnas.cli._compress import compress_command

    app.command("compress")(compress_command)
except ImportError:  # pragma: no cover - only while the toolkit is absent
    pass


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=True)
    except SlimnasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
