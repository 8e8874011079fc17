"""The report of a ``compress`` output folder (a given policy or ``--auto``): the model before and
after (accuracy, params, MACs, bytes, latency, with the ratio), the policy, the per-layer
decisions of ``policy.json`` (or the widths a one-shot pruning step kept) and, where the output
has it, the sensitivity of each layer; as plain JSON values first, rendered second.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from slimnas.errors import ConfigError
from slimnas.export._info import read_run_info
from slimnas.report._data import card
from slimnas.report._explain import read_policy
from slimnas.report._figures import layers_figure, sensitivity_figure

#: rows of the before/after table, the command line's and the report's: (metrics key, label,
#: format); a row shows where both sides have it, then a latency row per batch measured on both
ROWS = [
    ("test_accuracy", "test accuracy (ONNX Runtime)", "{:.4f}"),
    ("val_accuracy", "val accuracy (ONNX Runtime)", "{:.4f}"),
    ("params", "params", "{:,}"),
    ("macs", "MACs / sample", "{:,}"),
    ("bytes", "ONNX file bytes", "{:,}"),
    ("weight_bytes", "  weight payload", "{:,}"),
    ("overhead_bytes", "  format overhead", "{:,}"),
    ("storage_bytes", "storage bytes", "{:,}"),
    ("bits", "bits per weight (file)", "{:.2f}"),
]


def table_rows(before: dict) -> list[tuple[str, str, str]]:
    """The before/after table's rows for a result whose figures are ``before``: :data:`ROWS`, with
    another task's metrics (``test_r2``, ``val_mean_ap``, ...; its loss left out) in place of
    accuracy's."""
    if "val_accuracy" in before or "test_accuracy" in before:
        return ROWS
    from slimnas.measure._metric import TASK_METRICS

    quality = []
    for split in ("test", "val"):
        for name, metric in TASK_METRICS.items():
            if f"{split}_{name}" in before:
                display = metric.task_metric.display
                quality.append((f"{split}_{name}", f"{split} {display} (ONNX Runtime)", "{:.4f}"))
    return quality + ROWS[2:]


def latency_rows(batches) -> list[tuple[str, str, str]]:
    """The before/after table's latency rows, one per batch size."""
    return [(f"latency_ms_b{b}", f"latency ms, batch {b}", "{:.4f}") for b in batches]


def is_compress_output(folder: str | Path) -> bool:
    """A ``compress`` output: a folder with compress's ``report.json`` and no search config."""
    folder = Path(folder)
    return (folder / "report.json").is_file() and not (folder / "config.yaml").is_file()


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError("run", f"a readable {path.name} (JSON)", f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError("run", f"a JSON object in {path.name}", f"{path}: {type(doc).__name__}")
    return doc


def compress_report_data(folder: str | Path) -> dict:
    """Everything the report of the ``compress`` output in ``folder`` shows.

    Returns:
        ``kind`` (``"compress"``), ``run`` (name, folder, mode, model, data, budget and whether the
        result meets it), ``rows`` (the before/after table: key, label, before, after, ratio),
        ``slower`` (the batches at which the compressed model is slower than its input),
        ``policy`` (its steps), ``card`` (per-layer decisions and sensitivity, as a search's
        front member's), ``warnings``, ``checks`` and ``precision_reasons`` (``--auto`` under a size
        budget: layer -> why it has its precision).
    """
    from slimnas import __version__

    root = Path(folder)
    if not root.is_dir():
        raise ConfigError("run", "an existing run folder", str(root))
    report = _read(root / "report.json")
    if not isinstance(report.get("before"), dict) or not isinstance(report.get("after"), dict):
        raise ConfigError("run", "a compress output whose report.json has 'before' and 'after'", str(root / "report.json"))
    before, after = report["before"], report["after"]
    rows = []
    for key, label, fmt in table_rows(before) + latency_rows((1, 64)):
        b, a = before.get(key), after.get(key)
        if isinstance(b, (int, float)) and isinstance(a, (int, float)):
            rows.append({"key": key, "label": label, "before": b, "after": a, "ratio": a / b if b else None,
                         "before_text": fmt.format(b), "after_text": fmt.format(a)})
    slower = [r["label"].removeprefix("latency ms, ") for r in rows
              if r["key"].startswith("latency_ms") and r["ratio"] is not None and r["ratio"] > 1]
    doc = read_policy(root) if (root / "policy.json").is_file() else None
    if doc is None:  # a given policy: the widths its pruning step kept, per layer
        layers = (report.get("steps") or {}).get("prune", {}).get("layers") or {}
        doc = {"policy": report.get("policy") or {},
               "layers": [{"layer": name, "width": wk[0], "kept": wk[1]} for name, wk in layers.items()]}
    info = read_run_info(root)
    name = info.get("name") or root.name  # compress --name, else the folder's
    member = card({"trial": report.get("trial"), "name": name}, root) if (root / "policy.json").is_file() \
        else {"trial": None, "name": name, **_card_of(doc)}
    if not member["sensitivity"] and (root / "sensitivity.json").is_file():
        sens = _read(root / "sensitivity.json")
        member["sensitivity"] = {layer: {str(p[0]): p[1] for p in points}
                                 for layer, points in (sens.get("curves") or {}).items()}
    budget = report.get("budget") or []
    if (root / "sensitivity.json").is_file():  # what the curves measure: accuracy, or the task's metric
        member["sensitivity_metric"] = _read(root / "sensitivity.json").get("display", "accuracy")
    return {
        "kind": "compress",
        "slimnas": __version__,
        "run": {"name": name, "folder": str(root), "mode": "auto" if "budget" in report else "policy",
                "model": info.get("model"), "dataset": (info.get("data") or {}).get("name"),
                "budget": list(budget), "feasible": report.get("feasible"), "n_trials": report.get("n_trials"),
                "trial": report.get("trial")},
        "rows": rows,
        "slower": slower,
        "policy": doc["policy"],
        "card": member,
        "warnings": list(report.get("warnings") or []),
        "checks": dict(report.get("checks") or {}),
        # --auto under a size budget: why each layer has its precision
        "precision_reasons": {r["layer"]: r["precision_reason"] for r in doc["layers"] if r.get("precision_reason")},
    }


def _card_of(doc: dict) -> dict:
    """:func:`slimnas.report.card`'s per-layer part for a policy document held in memory."""
    from slimnas.report._explain import layer_columns, policy_summary

    rows = doc["layers"]
    columns = [column for _, column, _ in layer_columns(rows)]
    return {"compression": policy_summary(doc), "columns": columns, "sensitivity": {},
            "layers": [{"layer": r["layer"], "width": r.get("width"), "kept": r.get("kept"),
                        **{c: r[c] for c in columns if c in r}} for r in rows]}


def _steps(policy: dict) -> str:
    parts = []
    for step in policy.get("steps", []):
        opts = ", ".join(f"{k} per layer (below)" if isinstance(v, dict) else f"{k} {v}"
                         for k, v in step.get("options", {}).items())
        parts.append(f"{step['compressor']} ({opts})" if opts else step["compressor"])
    if policy.get("distill"):
        parts.append(f"distillation (temperature {policy.get('temperature')})")
    return "; ".join(parts) or "-"


def _verdict(run: dict) -> str:
    if run["mode"] != "auto":
        return "a given policy"
    met = "meets" if run["feasible"] else "misses"
    return (f"compress --auto: the chosen policy (trial {run['trial']} of {run['n_trials']}) {met} the budget "
            f"{', '.join(run['budget']) or 'none'}")


def _layer_cells(c: dict) -> tuple[list[str], list[list]]:
    cols = ["layer", "width", "kept", *c["columns"]]
    return cols, [[f"{r[k]:.2f}" if isinstance(r.get(k), float) else r.get(k, "-") for k in cols] for r in c["layers"]]


def _sensitivity_cells(c: dict) -> tuple[list[str], list[list]]:
    ratios = sorted({r for curve in c["sensitivity"].values() for r in curve}, key=float)
    return (["layer", *(f"{float(r):.0%} pruned" for r in ratios)],
            [[layer, *(f"{curve[r]:.3f}" if r in curve else "-" for r in ratios)]
             for layer, curve in c["sensitivity"].items()])


def render_compress_html(data: dict) -> str:
    """The report page of a compress output (the search report's style and self-contained plotly)."""
    import plotly.offline

    from slimnas.report._html import STYLE, _plot, _table

    run, c = data["run"], data["card"]
    esc = html.escape
    parts = [f"<h1>{esc(run['name'])}</h1>",
             f'<p class="summary">{esc(_verdict(run))} · model {esc(str(run["model"] or "-"))} · data '
             f'{esc(str(run["dataset"] or "-"))}<br>output folder {esc(run["folder"])}</p>',
             "<h2>Before and after</h2>",
             _table(["metric", "before", "after", "after/before"],
                    [[r["label"], r["before_text"], r["after_text"], "-" if r["ratio"] is None else f"{r['ratio']:.3f}"]
                     for r in data["rows"]], text_columns=1)]
    if data["slower"]:
        parts.append(f'<p class="warning" id="slower">The compressed model is <b>slower</b> than its input at '
                     f'{esc(", ".join(data["slower"]))} (ONNX Runtime, on the machine that ran compress).</p>')
    parts += [f'<p class="warning">warning: {esc(w)}</p>' for w in data["warnings"]]
    parts += ["<h2>Policy</h2>", f"<p>{esc(_steps(data['policy']))}</p>"]
    if c["columns"]:  # per-layer settings (--auto): their summary
        parts.append(f'<p class="note">per layer: {esc(c["compression"])}</p>')
    if c["layers"]:
        cols, body = _layer_cells(c)
        parts += ["<h2>Per-layer decisions</h2>", _plot(layers_figure(c), "layers"), _table(cols, body, text_columns=1)]
    if data.get("precision_reasons"):
        parts += ["<h2>Why each layer has its precision</h2>",
                  _table(["layer", "precision: why"], [[k, v] for k, v in data["precision_reasons"].items()],
                         text_columns=2)]
    if c["sensitivity"]:
        cols, body = _sensitivity_cells(c)
        parts += ["<h2>Sensitivity</h2>",
                  f'<p class="note">Validation {esc(c.get("sensitivity_metric", "accuracy"))} of the input model '
                  "with only this layer pruned by each share, before fine-tuning.</p>", _plot(sensitivity_figure(c), "sensitivity"), _table(cols, body, text_columns=1)]
    if data["checks"]:
        parts += ["<h2>Checks</h2>", _table(["check", "value"], [[k.replace("_", " "), f"{v:.3g}" if isinstance(v, float)
                                                                  else v] for k, v in data["checks"].items()],
                                            text_columns=1)]
    parts.append(f'<p class="note">slimnas {esc(data["slimnas"])}</p>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>slimnas report: '
            f'{esc(run["name"])}</title><style>{STYLE}</style>'
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>'
            f'<body>{"".join(parts)}</body></html>')


def render_compress_markdown(data: dict) -> str:
    """The same report as Markdown tables."""
    from slimnas.report._markdown import _table

    run, c = data["run"], data["card"]
    out = [f"# {run['name']}", "", f"{_verdict(run)}; model `{run['model'] or '-'}`; data {run['dataset'] or '-'}; "
           f"output folder `{run['folder']}`.", "", "## Before and after", "",
           *_table(["metric", "before", "after", "after/before"],
                   [[r["label"], r["before_text"], r["after_text"], "-" if r["ratio"] is None else f"{r['ratio']:.3f}"]
                    for r in data["rows"]])]
    if data["slower"]:
        out += [f"**The compressed model is slower than its input at {', '.join(data['slower'])}.**", ""]
    out += [line for w in data["warnings"] for line in (f"Warning: {w}", "")]
    out += ["## Policy", "", _steps(data["policy"]), ""]
    if c["layers"]:
        out += ["## Per-layer decisions", "", *_table(*_layer_cells(c))]
    if data.get("precision_reasons"):
        out += ["## Why each layer has its precision", "",
                *(f"- {k}: {v}" for k, v in data["precision_reasons"].items()), ""]
    if c["sensitivity"]:
        out += ["## Sensitivity", "", *_table(*_sensitivity_cells(c))]
    return "\n".join(out)
