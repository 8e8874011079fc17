"""Report data: what a report shows about a search run, as plain JSON values read from its
folder and its study. Rendering (HTML, Markdown) reads only this, so every number is tested
without a browser.

The front is ``pareto.json``'s (its members tested once on the test set; before a search ends,
the study's current front on validation figures). Per member, ``policy.json`` gives the
per-layer decisions and, where the search measured it, their sensitivity.
"""

from __future__ import annotations

import math
from pathlib import Path

from optuna.trial import FrozenTrial, TrialState

from slimnas.measure import get_metric, metric_label
from slimnas.measure._format import fmt_count
from slimnas.measure._metric import TASK_METRICS
from slimnas.report._explain import layer_columns, policy_summary, read_policy
from slimnas.report._progress import progress
from slimnas.report._table import arch_summary
from slimnas.study import RunFolder, RunRecord, feasible, open_run, pareto_front
from slimnas.study._record import damaged_trials
from slimnas.study._runs import run_status
from slimnas.tasks._run import quality

#: Optuna's trial states as the report names them (a complete trial that was not trained is ``skipped``)
STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}


def report_data(folder: str | Path) -> dict:
    """Everything a report shows about the search run in ``folder``.

    Returns:
        ``run`` (name, status, objectives, budget, trial counts, data), ``trials`` (one row per
        trial), ``front`` and ``closest`` (tested members), ``progress`` (see
        :func:`slimnas.report.progress`), ``cards`` (per front member: architecture, per-layer
        decisions and sensitivity) and ``baselines`` (the uncompressed parents of a joint search).
    """
    from slimnas import __version__  # the package root, complete by the time a report is made

    run = open_run(folder)
    damaged = damaged_trials(run.study)  # set aside by a resume, their candidates run again
    trials = [t for t in run.study.get_trials(deepcopy=False) if str(t.number) not in damaged]
    tested = {m["trial"]: m for m in [*run.front, *(run.pareto or {}).get("closest", [])]}
    rows = [trial_row(t, run, tested) for t in trials]
    by_number = {r["trial"]: r for r in rows}
    if run.pareto is not None:
        front = [_member(m, by_number.get(m["trial"], {})) for m in run.front]
        closest = [_member(m, by_number.get(m["trial"], {})) for m in run.pareto.get("closest", [])]
    else:  # the search has not ended: its current front, on validation figures
        found, near = pareto_front(trials, run.objectives, run.budget)
        front, closest = [by_number[t.number] for t in found], [by_number[t.number] for t in near]
    return {
        "slimnas": __version__,
        "run": _run_info(run, trials),
        "trials": rows,
        "front": front,
        "closest": closest,
        "progress": progress(rows, run.objectives, run.budget),
        "cards": [card(m, RunFolder(run.root).trial_dir(m["trial"]), run.quality) for m in front],
        "baselines": baselines(rows, run.quality["key"]),
    }


def _run_info(run: RunRecord, trials: list[FrozenTrial]) -> dict:
    shape, n_classes = (run.info.get("input_shape"), run.info.get("n_classes"))
    pareto = run.root / "pareto.json"
    return {
        "name": run.name,
        "folder": str(run.root),
        "status": run_status(trials, run.n_trials, pareto.stat().st_mtime if pareto.is_file() else None),
        "objectives": list(run.objectives),
        "budget": [{"text": str(b), "metric": b.metric, "key": b.key, "op": b.op, "limit": b.limit} for b in run.budget],
        "feasible": bool(run.front) if run.pareto is not None else None,
        "tested": run.pareto is not None,
        "n_trials": run.n_trials,
        "n_finished": sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
        "strategy": run.config.get("strategy", {}).get("name"),
        "dataset": run.config.get("data", {}).get("dataset"),
        "input_shape": shape,
        "n_classes": n_classes,
        "quality": run.quality,
        "task": (run.info.get("task") or {}).get("name", "classification"),
    }


def _numbers(metrics: dict) -> dict:
    """The numeric figures of a metrics dict (flags, curves and notes left out)."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def trial_row(t: FrozenTrial, run: RunRecord, tested: dict[int, dict]) -> dict:
    """One trial: state, architecture, compression, figures (a tested member's final ones),
    whether it meets the budget and is on the front, when it ended and how long it took."""
    metrics = dict(t.user_attrs.get("metrics", {}))
    state = STATES.get(t.state, t.state.name.lower())
    if state == "complete" and metrics.get("trained") is False:
        state = "skipped"
    if t.number in tested:
        metrics.update(tested[t.number]["metrics"])
    cand = t.user_attrs.get("candidate")
    doc = read_policy(RunFolder(run.root).trial_dir(t.number)) if cand and "compression" in cand else None
    return {
        "trial": t.number,
        "state": state,
        "architecture": arch_summary(cand) if cand else None,
        "compression": policy_summary(doc) if doc else None,
        "metrics": _numbers(metrics),
        "feasible": bool(metrics) and feasible(metrics, run.budget),
        "front": t.number in {m["trial"] for m in run.front},
        "started": t.datetime_start.isoformat() if t.datetime_start else None,
        "completed": t.datetime_complete.isoformat() if t.datetime_complete else None,
        "seconds": metrics.get("seconds"),
    }


def _member(m: dict, row: dict) -> dict:
    """A tested member of ``pareto.json`` with its trial's row (state, compression)."""
    return {**row, "trial": m["trial"], "architecture": arch_summary(m), "arch": m["arch"], "train": m.get("train"),
            "metrics": _numbers(m["metrics"])}


def card(member: dict, trial_dir: Path, q: dict | None = None) -> dict:
    """A front member's card: its architecture and figures, and from ``policy.json`` the
    compression summary, one row per layer (width, kept, every compressor's per-layer setting)
    and the sensitivity curves (validation accuracy with only that layer pruned by a ratio; of
    another task, ``q``'s primary metric, named as ``sensitivity_metric``)."""
    doc = read_policy(trial_dir)
    rows = doc["layers"] if doc else []
    columns = [column for _, column, _ in layer_columns(rows)]
    layers = [{"layer": r["layer"], "width": r.get("width"), "kept": r.get("kept"),
               **{c: r[c] for c in columns if c in r}} for r in rows]
    sensitivity = {r["layer"]: {str(k): v for k, v in sorted(r["sensitivity"].items(), key=lambda kv: float(kv[0]))}
                   for r in rows if r.get("sensitivity")}
    named = {} if q is None or q["key"] == "val_accuracy" else \
        {"sensitivity_metric": metric_label(q["key"]).removeprefix("val ")}  # R², perplexity
    return {**member, "compression": policy_summary(doc) if doc else None, "columns": columns, "layers": layers,
            "sensitivity": sensitivity, **named}


def baselines(rows: list[dict], key: str = "val_accuracy") -> list[dict]:
    """The trained, uncompressed parents a joint search compressed, one per architecture: what
    compression is measured against (``key``: the run's quality figure, ``val_r2`` for a regression)."""
    out: dict[str, dict] = {}
    for r in rows:
        m = r["metrics"]
        if f"parent_{key}" not in m or r["architecture"] is None:
            continue
        b = out.setdefault(r["architecture"], {"architecture": r["architecture"], "trials": [], "metrics": {
            key: m[f"parent_{key}"], "params": m.get("parent_params"), "macs": m.get("parent_macs")}})
        b["trials"].append(r["trial"])
    return list(out.values())


#: figures every table shows when some row has them, before the objectives' and budgets' others
TABLE_KEYS = ("val_accuracy", "test_accuracy", "params", "macs", "bytes", "latency_ms")


def table_keys(data: dict, rows: list[dict]) -> list[str]:
    """The metrics keys a table of ``rows`` shows: the standard figures and every objective's
    and budget's, where some row has them."""
    run = data["run"]
    q = run.get("quality") or quality(None)
    wanted = [q["key"], q["test_key"], *TABLE_KEYS[2:], *(get_metric(o).key for o in run["objectives"]),
              *(b["key"] for b in run["budget"])]
    present = {k for r in rows for k in r["metrics"]}
    return [k for k in dict.fromkeys(wanted) if k in present]


def format_value(key: str, value) -> str:
    """A figure as tables show it: accuracies and milliseconds to 3 decimals, counts as 1.5k."""
    if value is None:
        return "-"
    if isinstance(value, float) and (key.endswith("accuracy") or key.endswith("_ms") or key == "hypervolume"):
        return f"{value:.3f}"
    if isinstance(value, float) and key.split("_", 1)[-1] in TASK_METRICS:  # a task's metric: val_r2, test_mse
        return f"{value:.3f}"
    return fmt_count(value) if isinstance(value, (int, float)) else str(value)
