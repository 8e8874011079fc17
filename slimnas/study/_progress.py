"""Progress display: a live bar of trials and epochs, and one line per finished trial."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from slimnas.training import Callback


def fmt_count(v: float) -> str:
    v = float(v)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"


class SearchProgress:
    """Shows trials done out of the total and the running trial's epochs."""

    def __init__(self, console: Console, *, n_total: int, n_done: int, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not enabled, transient=True,
        )
        self.trials = self.progress.add_task("trials", total=n_total, completed=n_done)
        self.epochs = self.progress.add_task("epochs", total=1, visible=False)

    def __enter__(self) -> SearchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start_trial(self, number: int, n_epochs: int) -> None:
        self.progress.reset(self.epochs, total=n_epochs, visible=True, description=f"trial {number} epochs")

    def epoch_callback(self) -> Callback:
        outer = self

        class _Epochs(Callback):
            def on_epoch_end(self, epoch, metrics):
                outer.progress.update(outer.epochs, completed=epoch)

        return _Epochs()

    def end_trial(self, number: int, state: str, metrics: dict, seconds: float) -> None:
        self.progress.advance(self.trials)
        acc = metrics.get("val_accuracy")
        parts = [f"trial {number:>3} {state:<8}"]
        if acc is not None:
            parts.append(f"val_acc {acc:.3f}")
        for key in ("params", "macs", "bytes"):
            if key in metrics:
                parts.append(f"{key} {fmt_count(metrics[key])}")
        if "latency_ms" in metrics:
            parts.append(f"latency {metrics['latency_ms']:.3f} ms")
        parts.append(f"{seconds:.1f}s")
        self.console.print("  ".join(parts), highlight=False)
