"""Command line: thin commands, each calling one library function and rendering its result.

User mistakes (:class:`slimnas.errors.SlimnasError`) print one line and exit 2, no traceback.
The help of options that name registry entries (strategies, metrics, compressors) lists what
is registered when the command line is built, plug-ins included (see
:func:`slimnas.registry.load_plugins`).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from slimnas.cli._compress import compress_command
from slimnas.cli._dashboard import dashboard_command
from slimnas.cli._device import device_app
from slimnas.cli._export import export_command, format_help
from slimnas.cli._progress import ConsoleListener
from slimnas.cli._report import report_command
from slimnas.cli._runs import runs_command
from slimnas.cli._search import registry_help, search_command
from slimnas.compress import list_compressors
from slimnas.errors import SlimnasError
from slimnas.registry import load_plugins

__all__ = [
    "ConsoleListener",
    "build_app",
    "build_cli",
    "load_plugins",
    "main",
]


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      rich_markup_mode=None,  # plain help: defaults shown, flags without a <bool> metavar
                      help="slimnas: architecture search and model compression under a deployment budget.")

    @app.callback()
    def _root(
        version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                              help="Print slimnas's version and exit.")] = False,
    ) -> None:
        """slimnas: architecture search and model compression under a deployment budget."""

    app.command("search")(search_command)
    app.command("compress")(compress_command)
    app.command("runs")(runs_command)
    app.command("report")(report_command)
    app.command("export")(export_command)
    app.command("dashboard")(dashboard_command)
    app.add_typer(device_app, name="device")
    return app


def _print_version(value: bool) -> None:
    if value:
        from slimnas import __version__

        print(f"slimnas {__version__}")
        raise typer.Exit()


def build_cli():
    """The click command of :func:`build_app`, its help filled from the registries."""
    cli = typer.main.get_command(build_app())
    shared = registry_help()  # options several commands take: one help in all of them
    helps = {
        "compress": {"step": f"any registered compressor ({', '.join(list_compressors())}) as "
                             "NAME[:key=value,...], repeatable (its own commas separate its settings)"},
        "export": {"format": format_help()},
    }
    for name, command in _commands(cli):
        for param in command.params:
            if param.name in helps.get(name, {}):
                param.help = helps[name][param.name]
            elif param.name in shared and param.param_type_name == "option":
                param.help = shared[param.name]
    return cli


class _ClosedPipe(Exception):
    """Standard output was closed by its reader (``slimnas runs | head``)."""


def _closed_pipe_passes(cli) -> None:
    """Let a closed standard output reach :func:`main` (click would exit 1 on it)."""
    invoke = cli.invoke

    def guarded(ctx):
        try:
            return invoke(ctx)
        except BrokenPipeError as e:
            raise _ClosedPipe from e

    cli.invoke = guarded


def _commands(group, prefix: str = ""):
    """``(name, command)`` of every command, those of sub-groups (``device profile``) included."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield prefix + name, command


def main(argv: list[str] | None = None) -> None:
    try:
        load_plugins()
        cli = build_cli()
        _closed_pipe_passes(cli)
        cli.main(args=argv, prog_name="slimnas", standalone_mode=True)
    except SlimnasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except _ClosedPipe:
        # the reader has what it wanted: stop quietly (what is still buffered goes nowhere)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
