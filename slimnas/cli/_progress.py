"""The terminal's view of a run: a live bar of trials and epochs, one line per finished trial,
notes and tables. The library reports through :class:`slimnas.study.Listener`; this renders it."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slimnas.measure import fmt_count
from slimnas.report import sensitivity_table
from slimnas.study import Listener


class ConsoleListener(Listener):
    """Prints a run's progress; with ``live``, a progress display of trials and epochs."""

    def __init__(self, console: Console, *, live: bool = True) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not live, transient=True,
        )
        self.trials = self.progress.add_task("trials", total=1, visible=False)
        self.epochs = self.progress.add_task("epochs", total=1, visible=False)

    def __enter__(self) -> ConsoleListener:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def started(self, info):
        if info["kind"] == "search":
            budget = f", budget {', '.join(info['budget'])}" if info["budget"] else ""
            self.console.print(f"[bold]slimnas search[/] {info['study']}: {info['data']}; {info['n_done']} trials "
                               f"done, {info['n_todo']} to run ({info['strategy']}, objectives "
                               f"{', '.join(info['objectives'])}{budget}) -> {info['run_dir']}")
            self.progress.update(self.trials, total=info["n_total"], completed=info["n_done"], visible=True)
        else:
            b = info["before"]
            self.console.print(f"[bold]slimnas compress --auto[/]: {info['data']}; budget {', '.join(info['budget'])}; "
                               f"input model: val {b['val_accuracy']:.3f}, {b['macs']:,} MACs, {b['bytes']:,} bytes")
            self.progress.update(self.trials, total=info["n_total"], completed=0, visible=True)

    def trial_started(self, number, n_epochs):
        self.progress.reset(self.epochs, total=n_epochs, visible=True, description=f"trial {number} epochs")

    def epoch_ended(self, number, epoch, metrics):
        self.progress.update(self.epochs, completed=epoch)

    def trial_finished(self, number, state, metrics, seconds):
        self.progress.advance(self.trials)
        parts = [f"trial {number:>3} {state:<11}"]
        if state == "failed":
            self.console.print(f"trial {number:>3} [red]failed[/]     {metrics.get('reason', '')}  {seconds:.1f}s",
                               highlight=False)
            return
        if metrics.get("val_accuracy") is not None and state != "skipped":  # a skipped model was not trained
            parts.append(f"val_acc {metrics['val_accuracy']:.3f}")
        for key in ("params", "macs", "bytes"):
            if key in metrics:
                parts.append(f"{key} {fmt_count(metrics[key])}")
        if "latency_ms" in metrics:
            parts.append(f"latency {metrics['latency_ms']:.3f} ms")
        parts.append(f"{seconds:.1f}s")
        self.console.print("  ".join(parts), highlight=False)

    def note(self, text, *, level="info"):
        self.console.print(f"[yellow]{text}[/]" if level == "warning" else text, highlight=False)

    def sensitivity(self, result):
        self.console.print(sensitivity_table(result))
