"""The front as a table in the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from slimnas.compress._quality import Quality
from slimnas.measure import get_metric, metric_label
from slimnas.measure._format import fmt_count
from slimnas.report._explain import (
    explanation_table,
    policy_summary,
    read_policy,
    sensitivity_names,
)
from slimnas.spaces import FAMILIES, arch_from_dict, get_family
from slimnas.tasks._run import quality as run_quality
from slimnas.tasks._run import task_record


def make_console() -> Console:
    """A console for the terminal, or 120 columns wide when output goes to a file or pipe."""
    import sys

    return Console(width=None if sys.stdout.isatty() else 120)


def arch_summary(candidate: dict) -> str:
    """A short human description of a candidate's architecture, e.g. ``cnn 8k5s2-16k3s2 gap relu bn
    res``: its family's :meth:`~slimnas.spaces.BaseFamily.summary` (a family not registered in
    this process, such as a plug-in's that is not loaded, is named, not described)."""
    arch = candidate["arch"]
    name = arch.get("family")
    if name not in FAMILIES:
        return f"{name} (family not registered)"
    return get_family(name).summary(arch_from_dict(arch))


#: columns every front table shows: (metric key, header, format)
STANDARD_COLUMNS = [(key, metric_label(key), fmt) for key, fmt in (
    ("val_accuracy", "{:.3f}"), ("test_accuracy", "{:.3f}"), ("params", None), ("macs", None), ("bytes", None),
    ("latency_ms", "{:.3f}"))]


def quality_columns(quality: dict | None) -> list[tuple[str, str, object]]:
    """The standard columns of a run whose quality figures are ``quality``
    (:func:`slimnas.tasks._run.quality`; ``None``: accuracy): a regression run's show ``val R²``
    and ``test R²`` where a classification run's show accuracy."""
    if quality is None or quality["key"] == "val_accuracy":
        return list(STANDARD_COLUMNS)
    metric = get_metric(quality["metric"])
    return [(quality["key"], metric_label(quality["key"]), metric),
            (quality["test_key"], metric_label(quality["test_key"]), metric), *STANDARD_COLUMNS[2:]]


def front_columns(metric_names=(), quality: dict | None = None) -> list[tuple[str, str, object]]:
    """The standard columns plus one per objective or budget metric they lack (registered
    metrics format their own values)."""
    cols = quality_columns(quality)
    keys = {c[0] for c in cols}
    for name in metric_names:
        metric = get_metric(name)
        if metric.key not in keys:
            cols.append((metric.key, f"{metric.name}" + (f" {metric.unit}" if metric.unit else ""), metric))
            keys.add(metric.key)
    return cols


def _cell(value, fmt) -> str:
    if value is None:
        return "-"
    return fmt_count(value) if fmt is None else fmt.format(value)  # a format string or a metric


def front_table(members, title: str, metric_names=(), quality: dict | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    policies = {m.trial: read_policy(m.path) for m in members}
    compressed = any(policies.values())
    columns = front_columns(metric_names, quality)
    for col in ["trial", "architecture"] + (["compression"] if compressed else []) + [c[1] for c in columns]:
        table.add_column(col, justify="left" if col in ("architecture", "compression") else "right")
    for m in members:
        x = m.metrics
        table.add_row(
            str(m.trial),
            arch_summary(m.candidate),
            *([policy_summary(policies[m.trial])] if compressed else []),
            *(_cell(x.get(key), fmt) for key, _, fmt in columns),
        )
    return table


def print_front(result, console: Console) -> None:
    """Print the front, or (when nothing meets the budget) say so and show the closest models."""
    plan = result.plan
    names = [*plan.objectives, *(b.metric for b in plan.budget)]
    quality = None if plan.task is None else run_quality(task_record(plan.task))
    if result.front:
        n = len(result.front)
        console.print(front_table(result.front, f"Pareto front ({', '.join(plan.objectives)}), "
                                                f"{n} model{'s' if n != 1 else ''}, test set evaluated once", names,
                                    quality))
        for m in result.front:
            doc = read_policy(m.path)
            if doc:
                console.print(explanation_table(doc, f"trial {m.trial}: per-layer decisions ({m.path / 'policy.json'})",
                                                sensitivity_names(Quality.of(plan.task))))
    else:
        from slimnas.study._pareto import is_skipped

        complete = [t for t in result.study.trials if t.state.name == "COMPLETE"]
        n_skipped = sum(map(is_skipped, complete))
        n, budget = len(complete) - n_skipped, ", ".join(map(str, plan.budget))
        skipped = f"{n_skipped} skipped before training, over the budget from their size alone" if n_skipped else ""
        if not result.closest:
            console.print(f"[yellow]No trial was trained ({skipped}).[/]" if n_skipped
                          else "[yellow]No trial completed.[/]")
        else:
            console.print(f"[yellow]No model meets the budget {budget} ({n} trained trial{'s' if n != 1 else ''}"
                          f"{'; ' + skipped if skipped else ''}).[/] The closest ones:")
            console.print(front_table(result.closest, "Closest to the budget", names, quality))
    console.print(f"run folder: {result.run_dir}  (pareto.json, config.yaml, trials/)")
