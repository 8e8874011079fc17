"""The list of runs as a table in the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from slimnas.measure import get_metric, metric_label
from slimnas.measure._metric import TASK_METRICS

STATUS_STYLE = {"complete": "green", "running": "cyan", "interrupted": "yellow", "empty": "dim", "unreadable": "red",
                "damaged": "red"}


def best_summary(summary) -> str:
    """The best model in a few words: ``trial 4: test acc 0.680, 4.5k macs``."""
    if summary.best is None:
        if summary.n_done and summary.n_done == getattr(summary, "n_skipped", 0):
            return "none trained (all skipped before training)"
        return "none meets the budget" if summary.n_done else "-"
    m = summary.best["metrics"]
    tasks = [f"{split}_{o}" for o in summary.objectives if o in TASK_METRICS for split in ("test", "val")][:2]
    acc = next((f"{metric_label(k)} {m[k]:.3f}" for k in ("test_accuracy", "val_accuracy", *tasks) if k in m), None)
    costs = [o for o in summary.objectives  # a cost, not a loss (fitness folds a cost into one)
             if get_metric(o).direction == "minimize" and get_metric(o).unit != "loss"] or ["macs"]
    cost = get_metric(costs[0])
    parts = [p for p in (acc, f"{cost.format(m[cost.key])} {cost.name}" if cost.key in m else None) if p]
    trial = f"trial {summary.best['trial']}: " if summary.best.get("trial") is not None else ""
    return trial + ", ".join(parts)


def runs_table(summaries: Sequence, title: str) -> Table:
    """One row per run: name, kind, status, trials done/asked, best model, folder."""
    t = Table(title=title, title_justify="left")
    for col, justify in [("name", "left"), ("kind", "left"), ("status", "left"), ("trials", "right"),
                         ("best model", "left"), ("folder", "left")]:
        t.add_column(col, justify=justify)
    for s in summaries:
        trials = "-" if s.n_done is None else f"{s.n_done}/{s.n_total}" if s.n_total is not None else str(s.n_done)
        if getattr(s, "n_skipped", 0):
            trials += f" ({s.n_skipped} skipped)"
        status = f"[{STATUS_STYLE.get(s.status, '')}]{s.status}[/]"
        best = best_summary(s) if s.status not in ("unreadable", "damaged") else s.note
        t.add_row(s.name, s.kind, status, trials, best, str(s.folder))
    return t


