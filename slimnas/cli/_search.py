"""``slimnas search``: a thin command over :func:`slimnas.study.search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._progress import ConsoleListener
from slimnas.data import dataset_help
from slimnas.measure import list_metrics
from slimnas.report import make_console, print_front
from slimnas.strategies import EARLY_STOPPING, list_strategies
from slimnas.study import search


def search_command(
    config: Annotated[Path | None, typer.Argument(help="YAML config; the built-in default when omitted.")] = None,
    dataset: Annotated[str | None, typer.Option(help="mnist1d, digits, or a .npz/.csv file.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Search strategy.")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="The study's total; a resumed study runs the missing ones.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the training length.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the search and of training.")] = None,
    storage: Annotated[str | None, typer.Option(help="Any Optuna storage URL (default: SQLite in the run folder).")] = None,
    out: Annotated[str | None, typer.Option(help="Run folder (default runs/<study-name>).")] = None,
    name: Annotated[str | None, typer.Option(help="Study name.")] = None,
    objectives: Annotated[str | None, typer.Option(help="Comma-separated metrics.")] = None,
    budget: Annotated[list[str] | None, typer.Option(metavar="BUDGET", help="Hard constraint, repeatable: 'macs<=20000', 'bytes<=8KB'.")] = None,
    early_stopping: Annotated[str | None, typer.Option("--early-stopping", help="Stop weak trials early.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    trial_timeout: Annotated[float | None, typer.Option("--trial-timeout", help="Fail a trial that takes longer than this many seconds (the search goes on).")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column", help="Label column of a .csv data file [default: label].")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes on the same study.")] = None,
    device_profile: Annotated[str | None, typer.Option("--device-profile", help="Target a device: a profile YAML (slimnas device profile) or a built-in name (mcu, server-cpu); its runtime, threads and batch time latency, its table predicts it, its limits join the budget.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress display.")] = False,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write TensorBoard event files under the run folder's tensorboard/ (config: tensorboard: true).")] = False,
) -> None:
    """Search architectures and training recipes for the most accurate models within a budget."""
    console = make_console()
    with ConsoleListener(console, live=not quiet) as listener:
        result = search(
            config, listener=listener, dataset=dataset, strategy=strategy, n_trials=n_trials, epochs=epochs,
            seed=seed, storage=storage, out=out, name=name, objectives=objectives, budget=budget,
            early_stopping=early_stopping, timeout=timeout, device=device, workers=workers,
            trial_timeout=trial_timeout, label_column=label_column, tensorboard=True if tensorboard else None,
            device_profile=device_profile,
        )
    print_front(result, console)
    if result.interrupted:
        raise typer.Exit(130)
    if not result.front and not result.closest and result.study.trials:
        raise typer.Exit(1)  # every trial failed or was skipped before training: nothing to show


def registry_help() -> dict[str, str]:
    """Option help that lists what the registries hold when the command line is built."""
    return {
        "strategy": f"Search strategy: {', '.join(list_strategies())}.",
        "objectives": f"Comma-separated metrics: {', '.join(list_metrics())}.",
        "early_stopping": f"Stop weak trials early: {', '.join(EARLY_STOPPING)}.",
        "dataset": f"The data: {dataset_help()}.",
    }
