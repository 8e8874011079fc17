"""``slimnas search``: a thin command over :func:`slimnas.search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def search_command(
    config: Annotated[Path | None, typer.Argument(help="YAML config; the built-in default when omitted.")] = None,
    dataset: Annotated[str | None, typer.Option(help="mnist1d, digits, or a .npz/.csv file.")] = None,
    strategy: Annotated[str | None, typer.Option(help="random, grid, tpe, bohb, gp, nsga2, cmaes.")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="The study's total; a resumed study runs the missing ones.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the training length.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the search and of training.")] = None,
    storage: Annotated[str | None, typer.Option(help="Any Optuna storage URL (default: SQLite in the run folder).")] = None,
    out: Annotated[str | None, typer.Option(help="Run folder (default runs/<study-name>).")] = None,
    name: Annotated[str | None, typer.Option(help="Study name.")] = None,
    objectives: Annotated[str | None, typer.Option(help="Comma-separated: accuracy, loss, params, macs, bytes, latency, fitness.")] = None,
    budget: Annotated[list[str] | None, typer.Option(help="Hard constraint, repeatable: 'macs<=20000', 'bytes<=8KB'.")] = None,
    pruner: Annotated[str | None, typer.Option(help="Early stopping: none, median, hyperband.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes on the same study.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No live progress display.")] = False,
) -> None:
    """Search architectures and training recipes for the most accurate models within a budget."""
    from slimnas.study import search

    result = search(
        config, progress=not quiet, dataset=dataset, strategy=strategy, n_trials=n_trials, epochs=epochs,
        seed=seed, storage=storage, out=out, name=name, objectives=objectives, budget=budget, pruner=pruner,
        timeout=timeout, device=device, workers=workers,
    )
    if result.interrupted:
        raise typer.Exit(130)
