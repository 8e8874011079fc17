"""``slimnas device``: build a device profile on the target (``profile``), check and summarize one
(``show``), list the built-in ones (``list``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from slimnas.cli._options import (
    Dataset,
    Name,
    Out,
    Precision,
    Seed,
    as_options,
    split_list,
)
from slimnas.config import DEFAULT_RUNTIME, list_builtin_profiles
from slimnas.config._names import DEFAULT_PRECISIONS
from slimnas.config._profile import BUILTIN_PROFILES, write_profile
from slimnas.errors import ConfigError
from slimnas.measure import RUNTIMES, Budget, build_profile
from slimnas.measure._profile import load_profile
from slimnas.report._table import make_console
from slimnas.study import SearchPlan, load_splits

device_app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                         help="Device profiles: build one on the target, show one, list the built-in ones.")


def _batches(values: list[str] | None) -> tuple[int, ...]:
    out = []
    for item in split_list(values):
        if not item.isdigit() or int(item) < 1:
            raise ConfigError("--batch", "batch sizes >= 1, repeatable or comma-separated, such as 1,64", item)
        out.append(int(item))
    return tuple(out) or (1,)


class _LineProgress:
    """Progress as lines, for output that is not a terminal (a file, a pipe, a CI log): one line
    when a stage starts, then one per tenth of it done (or every 30 s), as ``search`` prints one
    per finished trial."""

    def __init__(self, console, labels: dict[str, str]) -> None:
        self.console, self.labels, self.t0 = console, labels, time.perf_counter()
        self.last: dict[str, tuple[int, float]] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        label, now = self.labels.get(stage, stage), time.perf_counter()
        if stage not in self.last:
            self.last[stage] = (0, now)
            self.console.print(f"{label}: 0/{total} ...", highlight=False)
        shown, when = self.last[stage]
        step = max(1, total // 10)
        if done > shown and (done >= total or done - shown >= step or now - when >= 30):
            self.last[stage] = (done, now)
            self.console.print(f"{label}: {done}/{total} ({now - self.t0:.0f} s)", highlight=False)


@device_app.command("profile")
def profile_command(
    out: Out = None,
    runtime: Annotated[str, typer.Option(help="Latency runtime the device runs.")] = DEFAULT_RUNTIME,
    runtime_threads: Annotated[int, typer.Option("--runtime-threads", min=1, help="Intra-op threads of the device's runtime: latency is timed with them, and runs targeting the device use them.")] = 1,
    threads: Annotated[int | None, typer.Option(min=1, hidden=True, help="The former name of --runtime-threads.")] = None,
    batch: Annotated[list[str] | None, typer.Option(metavar="N", help="Batch sizes the table holds, repeatable or comma-separated; the first is the one runs target [default: 1].")] = None,
    precision: Precision = None,
    config: Annotated[Path | None, typer.Option(help="A search config: its space and data set what the table covers [default: the built-in space].")] = None,
    dataset: Dataset = None,
    name: Name = None,
    limit: Annotated[list[str] | None, typer.Option(metavar="BUDGET", help="A limit every run targeting the device adds, repeatable or comma-separated: 'ram_bytes<=64KB', 'int8_bytes<=256KB' [default: none].")] = None,
    repeats: Annotated[int, typer.Option(min=5, help="Timed repeats per operator.")] = 50,
    n_calibration: Annotated[int, typer.Option("--n-calibration", min=3, help="Whole models that calibrate the predictor.")] = 24,
    n_check: Annotated[int, typer.Option("--n-check", min=0, help="Held-out models that measure the predictor's accuracy.")] = 24,
    seed: Seed = None,
) -> None:
    """Measure a device profile on this machine (run it ON the target): the latency of every
    operator configuration the search space can produce, and a predictor calibrated on whole models."""
    if out is None:
        raise ConfigError("--out", "the YAML file to write the profile to", None)
    if threads is not None and runtime_threads not in (1, threads):
        raise ConfigError("--threads", f"--runtime-threads alone (--threads is its former name; both given: "
                          f"{runtime_threads} and {threads})", threads)
    threads = threads or runtime_threads
    seed = 0 if seed is None else seed
    console = make_console()
    if runtime not in RUNTIMES:
        raise ConfigError("--runtime", f"one of {RUNTIMES.names()}", runtime)
    precisions = tuple(split_list(precision)) or DEFAULT_PRECISIONS
    batches = _batches(batch)
    limit = split_list(limit)
    with as_options("dataset"):
        plan = SearchPlan.load(config, dataset=dataset)
    for b in limit or ():
        Budget.parse(b, "--limit")
    splits = load_splits(plan)
    t0 = time.perf_counter()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    labels = {"ops": "enumerating operators", "timing": "timing operators", "models": "calibrating on models"}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def live(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        progress = live if console.is_terminal else _LineProgress(console, labels)

        profile = build_profile(name=name or out.stem, space=plan.space, input_shape=splits.input_shape,
                                n_classes=splits.n_classes, runtime=runtime, threads=threads, batches=batches,
                                precisions=precisions, limits=tuple(limit or ()), n_calibration=n_calibration,
                                n_check=n_check, repeats=repeats, seed=seed, progress=progress,
                                space_info={"dataset": plan.config.data.dataset})
    write_profile(profile, out)
    console.print(f"profiled {profile.space['n_ops']} operator configurations ({profile.space['n_architectures']} "
                  f"architectures drawn) x {len(batches) * len(precisions)} columns and {n_calibration + n_check} "
                  f"whole models in {time.perf_counter() - t0:.0f} s")
    _print_accuracy(console, profile)
    console.print(f"wrote {out}")


def _print_accuracy(console, profile) -> None:
    from rich.table import Table

    if not profile.accuracy:
        console.print("predictor accuracy: not measured (no held-out models)")
        return
    from slimnas.measure._predictor import untrusted
    from slimnas.measure._profile import REBUILD, error_text

    table = Table(title=f"predictor accuracy on held-out models ({profile.name})")
    for col in ("batch/precision", "models", "Spearman", "within ±10%", "within ±15%", "mean abs error"):
        table.add_column(col, justify="right")
    for key, a in profile.accuracy.items():
        table.add_row(key, str(a.get("n_models", "-")), f"{a['spearman']:.3f}", f"{a['within_10pct']:.0%}",
                      f"{a['within_15pct']:.0%}", f"{a['mape']:.1%}")
    console.print(table)
    bad = untrusted(profile.accuracy)
    if bad is not None:
        console.print(f"[bold red]warning:[/] this profile's latency predictor is too far off ({error_text(*bad)}): "
                      f"searches and compress refuse it; {REBUILD}", highlight=False)


@device_app.command("show")
def show_command(
    profile: Annotated[str, typer.Argument(help="A profile: a YAML path or a built-in name.")],
) -> None:
    """Check a device profile and summarize it (one line and exit 2 when it is not valid)."""
    p = load_profile(profile, "profile")
    console = make_console()
    console.print(f"[bold]{p.name}[/] ({p.source or 'built-in'})", highlight=False)
    if p.description:
        console.print(p.description, highlight=False)
    console.print(f"runtime {p.runtime}, {p.threads} thread(s), batch {', '.join(map(str, p.batch))}, "
                  f"precisions {', '.join(p.precisions)}; limits: {', '.join(p.limits) or 'none'}", highlight=False)
    if p.weight_precisions or p.formats:
        console.print(f"weights at {', '.join(p.allowed_precisions)}; export formats "
                      f"{', '.join(p.formats) or 'any'}", highlight=False)
    if p.machine:
        console.print(f"measured on {p.machine.get('host', '?')}: {p.machine.get('cpu', '?')}, "
                      f"{p.machine.get('cores', '?')} cores, onnxruntime {p.machine.get('onnxruntime', '?')}",
                      highlight=False)
    if p.has_table:
        console.print(f"latency table: {len(p.table)} operator configurations, columns "
                      f"{', '.join(sorted({k for e in p.table for k in e['ms']}))}", highlight=False)
        _print_accuracy(console, p)
    else:
        console.print("no latency table: runs measure latency on the machine they run on "
                      "(build one on the device with `slimnas device profile`)")


@device_app.command("list")
def list_command() -> None:
    """The built-in example profiles."""
    console = make_console()
    for name in list_builtin_profiles():
        raw = BUILTIN_PROFILES[name]
        console.print(f"[bold]{name}[/]: {raw['description']}", highlight=False)
