"""The terminal's view of a run: a live display of trials (with the time to go and the best
so far), the epochs of each running trial and the current phase of ``compress``; one line per
finished trial and phase; notes and tables. The library reports through
:class:`slimnas.study.Listener`; this renders it.

On a terminal the live display shows what is running and a line is printed when something
ends; when the output is a file or a pipe there is no live display, so each phase is also
announced by a line when it starts, and each trial's line says how many are done and the
time to go.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from slimnas.errors import ConfigError
from slimnas.measure import get_metric
from slimnas.measure._format import fmt_count
from slimnas.measure._metric import TASK_METRICS
from slimnas.report._explain import sensitivity_table
from slimnas.study import Listener, estimate_eta


def format_duration(seconds: float | None) -> str:
    """``4.2s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes = int(round(seconds)) // 60
    if minutes < 60:
        return f"{minutes}m{int(round(seconds)) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


class _Extra(ProgressColumn):
    """A column whose text the listener computes at each refresh (the time to go ticks down)."""

    def __init__(self, text) -> None:
        super().__init__()
        self.text = text

    def render(self, task) -> Text:
        return Text(self.text(task), style="progress.remaining")


class ConsoleListener(Listener):
    """Prints a run's progress; with ``live``, a progress display on a terminal.

    Args:
        console: where to print.
        live: a live display when ``console`` is a terminal (``--quiet`` turns it off).
        verbose: ``False`` prints only warnings (``compress --quiet``).
    """

    def __init__(self, console: Console, *, live: bool = True, verbose: bool = True) -> None:
        self.console, self.verbose = console, verbose
        self.live = live and verbose and console.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            _Extra(self._extra), console=console, disable=not self.live, transient=True,
        )
        self.trials = self.progress.add_task("trials", total=1, visible=False)
        self.running: dict[int, tuple[int, float]] = {}  # trial -> (its epochs row, when it started)
        self.phase: dict | None = None  # the current phase: name, label, rows, last epoch
        # what the time to go is estimated from
        self.durations: list[float] = []
        self.n_total = self.n_finished = 0
        self.n_workers, self.timeout, self.t_start = 1, None, time.monotonic()
        self.objective: str | None = None  # the first objective's metrics key, and whether it is maximised
        self.maximize = True
        self.best: float | None = None

    def __enter__(self) -> ConsoleListener:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    # -- the time to go and the best so far ------------------------------------------------

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until the trials end, as :func:`slimnas.study.estimate_eta` estimates them."""
        now = time.monotonic() if now is None else now
        running = [now - start for _, start in list(self.running.values())]
        return estimate_eta(list(self.durations), self.n_total - self.n_finished, workers=self.n_workers,
                            elapsed=now - self.t_start, timeout=self.timeout, running=running)

    def _extra(self, task) -> str:
        if task.id != self.trials:
            return ""
        parts = []
        eta = self.eta() if self.n_finished < self.n_total else None
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        if self.best is not None and self.objective is not None:
            parts.append(f"best {_label(self.objective)} {_value(self.objective, self.best)}")
        return "  ".join(parts)

    def _track(self, info: dict, *, n_done: int, n_total: int) -> None:
        self.n_total, self.n_finished = n_total, n_done
        self.n_workers = max(1, int(info.get("n_workers") or 1))
        self.timeout = info.get("timeout")
        self.t_start = time.monotonic()
        self.progress.update(self.trials, total=n_total, completed=n_done, visible=True)

    def _history(self, rows: list[dict]) -> None:
        """A resumed study's finished trials: their durations and the best so far."""
        self.durations = [r["metrics"]["seconds"] for r in rows if _number(r["metrics"].get("seconds"))]
        for r in rows:
            self._consider(r["state"], r["metrics"], r.get("feasible", False))

    def _consider(self, state: str, metrics: dict, feasible: bool) -> None:
        key = self.objective
        if key is None or state != "complete" or not feasible or not _number(metrics.get(key)):
            return
        sign = -1.0 if self.maximize else 1.0
        if self.best is None or sign * metrics[key] < sign * self.best:
            self.best = metrics[key]

    # -- a run's events ----------------------------------------------------------------------

    def started(self, info):
        objectives = info.get("objectives") or []
        metric = _metric(objectives[0]) if objectives else None
        self.objective = metric.key if metric is not None else None
        self.maximize = metric is not None and metric.direction == "maximize"
        if info["kind"] == "search":
            budget = f", budget {', '.join(info['budget'])}" if info["budget"] else ""
            self.console.print(f"[bold]slimnas search[/] {info['study']}: {info['data']}; {info['n_done']} trials "
                               f"done, {info['n_todo']} to run ({info['strategy']}, objectives "
                               f"{', '.join(info['objectives'])}{budget}) -> {info['run_dir']}")
            self._history(info.get("trials") or [])
            self._track(info, n_done=info["n_done"], n_total=info["n_total"])
        else:
            b = info["before"]
            if self.verbose:
                self.console.print(f"[bold]slimnas compress --auto[/]: {info['data']}; budget "
                                   f"{', '.join(info['budget'])}; input model: val {_quality_name(info)}"
                                   f"{b['val_' + info['objectives'][0]]:.3f}, "
                                   f"{b['macs']:,} MACs, {b['bytes']:,} bytes")
            self._track(info, n_done=0, n_total=info["n_total"])

    def trial_started(self, number, n_epochs):
        old = self.running.pop(number, None)
        if old is not None:
            self.progress.remove_task(old[0])
        task = self.progress.add_task(f"trial {number} epochs", total=n_epochs)
        self.running[number] = (task, time.monotonic())

    def epoch_ended(self, number, epoch, metrics):
        if number in self.running:
            self.progress.update(self.running[number][0], completed=epoch)

    def trial_finished(self, number, state, metrics, seconds):
        old = self.running.pop(number, None)
        if old is not None:
            self.progress.remove_task(old[0])
        if state != "failed":  # a failed trial does not count towards the study's total
            self.n_finished += 1
            self.durations.append(seconds)
            self.progress.advance(self.trials)
            self._consider(state, metrics, state == "complete")
        if not self.verbose:
            return
        if state == "failed":
            self.console.print(f"trial {number:>3} [red]failed[/]     {metrics.get('reason', '')}  {seconds:.1f}s",
                               highlight=False)
            return
        parts = [f"trial {number:>3} {state:<11}"]
        if metrics.get("val_accuracy") is not None and state != "skipped":  # a skipped model was not trained
            parts.append(f"val_acc {metrics['val_accuracy']:.3f}")
        elif state != "skipped":  # another task: its metrics as measured (val_r2, val_mse, ...)
            parts += [f"{k} {metrics[k]:.4g}" for k in metrics if k.startswith("val_") and k != "val_loss"
                      and k.removeprefix("val_") in TASK_METRICS and _number(metrics[k])][:2]
        for key in ("params", "macs", "bytes"):
            if key in metrics:
                parts.append(f"{key} {fmt_count(metrics[key])}")
        if "latency_ms" in metrics:
            parts.append(f"latency {metrics['latency_ms']:.3f} ms")
        parts.append(f"{seconds:.1f}s")
        if not self.live:  # no live display: the line says where the run stands
            eta = self.eta() if self.n_finished < self.n_total else None
            parts.append(f"[{self.n_finished}/{self.n_total}" + (f", eta {format_duration(eta)}]" if eta is not None
                                                                  else "]"))
        self.console.print("  ".join(parts), highlight=False, markup=False)

    def note(self, text, *, level="info"):
        if self.verbose or level == "warning":
            self.console.print(f"[yellow]{text}[/]" if level == "warning" else text, highlight=False)

    def sensitivity(self, result):
        if self.verbose:
            self.console.print(sensitivity_table(result))

    # -- phases of compress and compress --auto ------------------------------------------------

    def phase_started(self, phase, info):
        if phase == "search":  # the trials row is this phase's display
            self._history(info.get("trials") or [])
            self._track(info, n_done=int(info.get("done") or 0), n_total=int(info.get("total") or 0))
        if not self.verbose:
            return
        label = info.get("label", phase)
        if not self.live:
            detail = _detail(info)
            self.console.print(f"{label}{f' ({detail})' if detail else ''} ...", highlight=False, markup=False)
        self._end_phase_rows()
        rows = {}
        if phase != "search":
            total = info.get("total") or info.get("epochs")
            rows["main"] = self.progress.add_task(label, total=total)
        self.phase = {"name": phase, "info": info, "rows": rows, "epoch": None, "counts": bool(info.get("total"))}

    def phase_epoch(self, phase, epoch, n_epochs, metrics):
        p = self.phase
        if p is None or p["name"] != phase:
            return
        p["epoch"] = (epoch, metrics)
        acc = metrics.get("val_accuracy")
        if _number(acc) and (p.get("best") is None or acc > p["best"][1]):
            p["best"] = (epoch, acc)
        if not p["rows"]:
            return
        if p["counts"]:  # a phase of counted steps shows its epochs in a row of their own
            if "epochs" not in p["rows"]:
                p["rows"]["epochs"] = self.progress.add_task("  epochs", total=n_epochs)
            self.progress.update(p["rows"]["epochs"], total=n_epochs, completed=epoch)
        else:
            self.progress.update(p["rows"]["main"], total=n_epochs, completed=epoch)

    def phase_progress(self, phase, done, info):
        p = self.phase
        if p is not None and p["name"] == phase and "main" in p["rows"]:
            self.progress.update(p["rows"]["main"], completed=done)

    def phase_finished(self, phase, info, seconds):
        p, self.phase = self.phase, None
        self._end_phase_rows(p)
        if not self.verbose:
            return
        ours = p is not None and p["name"] == phase
        found = _found(info, p["epoch"] if ours else None, p.get("best") if ours else None)
        if phase == "search" and self.best is not None and self.objective is not None:
            found = f"best {_label(self.objective)} {_value(self.objective, self.best)}"
        label = info.get("label", phase)
        self.console.print(f"{label}: done in {format_duration(seconds)}{f'; {found}' if found else ''}",
                           highlight=False, markup=False)

    def _end_phase_rows(self, p: dict | None = None) -> None:
        p = p if p is not None else self.phase
        if p is not None:
            for task in p["rows"].values():
                self.progress.remove_task(task)
            p["rows"] = {}


def _detail(info: dict) -> str:
    """What a phase will do, in words: ``5 layers``, ``20 epochs``, ``up to 30 epochs``."""
    parts = []
    if info.get("total"):
        parts.append(f"{info['total']} {info.get('unit', 'steps')}")
    if info.get("epochs"):
        n = info["epochs"]
        parts.append(f"up to {n} epochs, until validation accuracy stops improving" if info.get("until_plateau")
                     else f"{n} epoch{'s' if n != 1 else ''}" + (" each" if info.get("total") else ""))
    return ", ".join(parts)


def _found(info: dict, last_epoch: tuple[int, dict] | None, best: tuple[int, float] | None = None) -> str:
    """What a phase found, in words (a training stopped at a plateau keeps its best epoch)."""
    parts = []
    task_key = next((k for k in info if k.startswith("val_") and k != "val_loss"
                     and k.removeprefix("val_") in TASK_METRICS and _number(info[k])), None)
    if _number(info.get("val_accuracy")):
        parts.append(f"val_acc {info['val_accuracy']:.3f}")
    elif task_key is not None:  # another task's quality figure (val_r2, val_mean_ap, ...)
        parts.append(f"{task_key} {info[task_key]:.4g}")
    elif info.get("until_plateau") and best is not None and last_epoch is not None:
        parts.append(f"best val_acc {best[1]:.3f} at epoch {best[0]} of {last_epoch[0]} (kept)")
    elif last_epoch is not None and _number(last_epoch[1].get("val_accuracy")):
        parts.append(f"val_acc {last_epoch[1]['val_accuracy']:.3f} at epoch {last_epoch[0]}")
    if info.get("importance") is not None and _number(info.get("lr")):
        parts.append(f"{info['importance']}, lr {info['lr']:g}")
    for key in ("macs", "bytes"):
        if _number(info.get(key)):
            parts.append(f"{key} {fmt_count(info[key])}")
    if info.get("out"):
        parts.append(f"wrote {info['out']}")
    return ", ".join(parts)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _metric(objective: str):
    try:
        return get_metric(objective)
    except ConfigError:
        return None


def _label(key: str) -> str:
    return "val_acc" if key == "val_accuracy" else key


def _value(key: str, value: float) -> str:
    return f"{value:.3f}" if key.endswith("accuracy") or isinstance(value, float) and abs(value) < 100 else fmt_count(value)


def _quality_name(info: dict) -> str:
    """The quality figure --auto reports before its trials: ``""`` for accuracy, else the task's metric and a space."""
    name = info["objectives"][0]
    return "" if name == "accuracy" else f"{name} "
