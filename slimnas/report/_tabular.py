"""The report of a tabular run (``slimnas search --benchmark ...``): the regret view.

Best-so-far validation accuracy against evaluations and against simulated training seconds, both
what the search saw (one seed's accuracy) and the table's mean over seeds of the cell it would
return, with the space's optimum drawn; for two objectives, the front the run found over the true
front computed from the whole table. Written as ``report.html`` (self-contained), ``report.json``
and ``report.md``, like every report.
"""

from __future__ import annotations

import html
from pathlib import Path

from slimnas._files import read_json
from slimnas.report._figures import LAYOUT, PAGE_WIDTH, legend_below, title
from slimnas.report._html import STYLE, _plot, _table

OPTIMUM = "#2ca02c"


def is_tabular_run(folder: str | Path) -> bool:
    from slimnas.study._tabular import TABULAR_FILE

    return (Path(folder) / TABULAR_FILE).is_file()


def tabular_data(folder: str | Path) -> dict:
    from slimnas.study._tabular import TABULAR_FILE

    return read_json(Path(folder) / TABULAR_FILE, "a JSON object of the tabular search (with 'summary')",
                     lambda d: isinstance(d["summary"], dict))


def _legend(traces: list[dict]) -> dict:
    """The legend under the plot area, as every report figure has it (report/_figures.py)."""
    return legend_below([t["name"] for t in traces], PAGE_WIDTH, plot_height=300)


def regret_figure(doc: dict, x: str) -> dict:
    """Best-so-far accuracy (seen, and the table's mean of that cell) against ``x`` (``evaluation``
    or ``sim_seconds``), the optimum as a dashed line."""
    curve = doc["curve"]
    xs = [c[x] for c in curve]
    optimum = doc["summary"]["optimum"]
    traces = [
        {"type": "scatter", "mode": "lines", "name": "best seen (one seed)", "x": xs,
         "y": [c["best_seen"] for c in curve], "line": {"color": "#b0b0b0", "shape": "hv"}},
        {"type": "scatter", "mode": "lines", "name": "its table mean", "x": xs,
         "y": [c["best_mean"] for c in curve], "line": {"color": "#d62728", "shape": "hv"}},
    ]
    label = "evaluations" if x == "evaluation" else "simulated training seconds"
    shapes = [{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": optimum, "y1": optimum,
               "line": {"color": OPTIMUM, "dash": "dash"}}]
    annotations = [{"xref": "paper", "yref": "y", "x": 1, "y": optimum, "xanchor": "right", "yanchor": "bottom",
                    "text": f"optimum {optimum:.2f}", "showarrow": False}]
    return {"data": traces, "layout": {**LAYOUT, "title": title(f"best-so-far validation accuracy vs {label}"),
                                       **_legend(traces), "xaxis": {"title": {"text": label}},
                                       "yaxis": {"title": {"text": "validation accuracy (%)"}},
                                       "shapes": shapes, "annotations": annotations}}


def front_figure(doc: dict) -> dict | None:
    """The found front (its cells at the table's means) over the true front."""
    if "true_front" not in doc:
        return None
    tf, found = doc["true_front"], doc["found_front"]
    cost = tf["cost"]
    traces = [
        {"type": "scatter", "mode": "lines+markers", "name": f"true front ({len(tf['cells'])} cells)",
         "x": tf["costs"], "y": tf["val_accuracy"], "text": tf["cells"], "line": {"color": OPTIMUM, "shape": "hv"},
         "marker": {"size": 5}},
        {"type": "scatter", "mode": "markers", "name": f"found front ({len(found)})",
         "x": [f["cost"] for f in found], "y": [f["mean_val_accuracy"] for f in found],
         "text": [f["cell"] for f in found], "marker": {"color": "#d62728", "size": 9}},
    ]
    ratio = doc["summary"].get("hypervolume_ratio")
    text = "found front over the true front" + (f" (hypervolume {100 * ratio:.2f}% of the true one's)" if ratio else "")
    return {"data": traces, "layout": {**LAYOUT, "title": title(text), **_legend(traces),
                                       "xaxis": {"title": {"text": cost}},
                                       "yaxis": {"title": {"text": "validation accuracy (%), table mean"}}}}


def _rows(doc: dict) -> list[list]:
    s = doc["summary"]
    rows = [["benchmark", doc["benchmark"]], ["strategy", doc["strategy"]], ["seed", doc["seed"]],
            ["objectives", ", ".join(doc["objectives"])], ["evaluations", s["n_evaluations"]],
            ["simulated seconds", f"{s['sim_seconds']:,.0f}"],
            ["optimum (table mean)", f"{s['optimum']:.2f} (cell {s['optimum_cell']})"]]
    if "best_cell" in s:
        rows += [["returned as best", f"cell {s['best_cell']} (trial {s['best_trial']}): seen {s['best_seen']:.2f}, "
                                      f"table mean {s['best_mean']:.2f}"], ["regret", f"{s['regret']:.2f}"]]
    if "hypervolume_ratio" in s:
        rows.append(["found front's hypervolume", f"{100 * s['hypervolume_ratio']:.2f}% of the true front's"])
    return rows


def render_markdown(doc: dict) -> str:
    lines = [f"# {doc['name']}: tabular search on {doc['benchmark']}", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in _rows(doc)]
    return "\n".join(lines)


def render_html(doc: dict) -> str:
    import plotly.offline

    parts = [f"<h1>{html.escape(doc['name'])}</h1>",
             '<p class="summary">A tabular search: every cell was looked up in the table, not trained.</p>',
             _table(["", ""], _rows(doc), text_columns=2), "<h2>Regret</h2>",
             _plot(regret_figure(doc, "evaluation"), "regret-evaluations"),
             _plot(regret_figure(doc, "sim_seconds"), "regret-seconds")]
    front = front_figure(doc)
    if front is not None:
        parts += ["<h2>Front</h2>", _plot(front, "front")]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>slimnas report: '
            f'{html.escape(doc["name"])}</title><style>{STYLE}</style>'
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>'
            f'<body>{"".join(parts)}</body></html>')
