"""Plotly figures of a report, as plain figure dicts built from the report data alone.

Front plots: validation accuracy (another task: its primary metric, R² or mAP) against each cost
the run measured (MACs, bytes, latency),
every trained trial in grey, the front members in colour (trace :data:`FRONT_TRACE`, one point
per member), the parents of a joint search as baselines, the budget's limits as dashed lines;
hovering a point shows the trial's architecture, compression and figures. Progress: the best
first objective and the hypervolume after each finished trial. Per front member: per-layer
decisions as bars and sensitivity curves.
"""

from __future__ import annotations

import math

from slimnas.measure import metric_label
from slimnas.measure._format import fmt_count
from slimnas.report._data import format_value
from slimnas.tasks._run import quality

COSTS = ("macs", "bytes", "latency_ms")
FRONT_TRACE = 1  # index of the front members' trace in every front plot (an infeasible run's closest)
GREY, FRONT, BASE, LIMIT, CLOSEST = "#b0b0b0", "#d62728", "#1f77b4", "#7f7f7f", "#ff7f0e"
# Fixed margins (``autoexpand`` off): with auto-margins, a legend's wrapping, the tick labels and
# the plot area can push each other in a loop that plotly.js cuts off after a few redraws with a
# console warning, depending on the page's timing. So each margin is sized here for what it holds:
# the top one for the toolbar's row, the title under it and a budget's label; the bottom one for
# the x axis and the legend, which sits under the plot area (never on the points).
TOOLBAR = 30  # px at the top of a figure kept for plotly's toolbar (modebar), above the title
AXIS = 58  # px under the plot area for the x tick labels and title
LEGEND_ROW, LEGEND_PAD = 20, 6  # px per row of a horizontal legend, and under it
MARGIN = {"l": 70, "r": 20, "t": TOOLBAR + 44, "b": AXIS, "autoexpand": False}
LAYOUT = {"template": "plotly_white", "margin": MARGIN, "hovermode": "closest"}
#: the width (px) a figure is laid out for: the page's 1200 px column, shared by a row's plots
PAGE_WIDTH = 1150


def title(text: str) -> dict:
    """A figure's title at its top left, under the toolbar's row (the toolbar sits at the top
    right and would overprint a centred title in a narrow plot)."""
    return {"text": text, "x": 0, "xref": "container", "xanchor": "left", "y": 1, "yref": "container",
            "yanchor": "top", "pad": {"l": 12, "t": TOOLBAR}}


def legend_below(labels: list[str], width: float, plot_height: int, *, b: int = AXIS) -> dict:
    """Layout entries for a horizontal legend under the plot area and its x axis: the legend, the
    bottom margin that holds it (its rows estimated for a figure ``width`` px wide, as plotly
    wraps them) and the figure height that leaves the plot area ``plot_height`` px."""
    rows, used = 1, 0.0
    for label in labels:
        item = 40 + 7 * len(label)  # symbol and gap, then about 7 px a character at 12 px
        if used and used + item > width - 10:
            rows, used = rows + 1, 0.0
        used += item
    bottom = b + rows * LEGEND_ROW + LEGEND_PAD
    return {"showlegend": True, "margin": {**MARGIN, "b": bottom}, "height": MARGIN["t"] + plot_height + bottom,
            "legend": {"orientation": "h", "x": 0, "xref": "container", "xanchor": "left", "y": 0,
                       "yref": "container", "yanchor": "bottom",
                       "bgcolor": "rgba(255,255,255,0)", "borderwidth": 0}}


def hover(row: dict, quality_keys: tuple[str, str] = ("val_accuracy", "test_accuracy")) -> str:
    """What hovering a point shows: trial, architecture, compression, figures."""
    m = row["metrics"]
    keys = [k for k in (*quality_keys, "params", "macs", "bytes", "latency_ms") if k in m]
    title = f"trial {row['trial']}" if isinstance(row["trial"], int) else row["trial"]
    lines = [f"<b>{title}</b>", row.get("architecture") or ""]
    if row.get("compression"):
        lines.append(row["compression"])
    lines.append(" · ".join(f"{metric_label(k)} {format_value(k, m[k])}" for k in keys))
    return "<br>".join(line for line in lines if line)


def _scatter(rows: list[dict], cost: str, name: str, color: str, symbol: str = "circle", size: int = 8,
             q: dict | None = None) -> dict:
    q = q or quality(None)
    key = q["key"]
    rows = [r for r in rows if cost in r["metrics"] and key in r["metrics"]]
    return {"type": "scatter", "mode": "markers", "name": name,
            "x": [r["metrics"][cost] for r in rows], "y": [r["metrics"][key] for r in rows],
            "text": [hover(r, (key, q["test_key"])) for r in rows], "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": color, "symbol": symbol, "size": size, "line": {"width": 1, "color": "white"}}}


def front_figure(data: dict, cost: str, width: float = PAGE_WIDTH) -> dict:
    """Validation accuracy against ``cost``: trials, front members, baselines, budget lines.

    A run where nothing met the budget has no front: its trace :data:`FRONT_TRACE` holds the
    closest trials instead, in another colour, beside the budget's lines that they miss.
    ``width`` is the width the figure is laid out for (its legend's rows)."""
    front = data["front"]
    shown = front or data["closest"]
    q = data["run"].get("quality") or quality(None)  # accuracy, or the run's task's primary metric
    named = "accuracy" if q["key"] == "val_accuracy" else metric_label(q["key"]).removeprefix("val ")
    numbers = {r["trial"] for r in shown}
    trained = [r for r in data["trials"] if r["state"] in ("complete", "pruned") and r["trial"] not in numbers]
    traces = [_scatter(trained, cost, "trials", GREY, size=6, q=q),
              _scatter(front, cost, f"front ({len(front)})", FRONT, size=10, q=q) if front else
              _scatter(shown, cost, f"closest to the budget ({len(shown)})", CLOSEST, symbol="x", size=10, q=q)]
    base = [{**b, "trial": "uncompressed parent of trials " + ", ".join(map(str, b["trials"]))}
            for b in data["baselines"]]
    if any(cost in b["metrics"] for b in base):
        traces.append(_scatter(base, cost, "uncompressed parents", BASE, symbol="diamond", size=9, q=q))
    for t in traces:  # an empty trace draws nothing: no legend entry either
        t["showlegend"] = bool(t["x"])
    shapes, annotations = [], []
    for b in data["run"]["budget"]:
        if b["key"] == cost:  # a vertical line at the limit
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": b["limit"], "x1": b["limit"],
                           "y0": 0, "y1": 1, "line": {"color": LIMIT, "dash": "dash"}})
            annotations.append({"xref": "x", "yref": "paper", "x": b["limit"], "y": 1, "text": b["text"],
                                "showarrow": False, "yanchor": "bottom"})
        elif b["key"] == q["key"]:  # a horizontal one
            shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": b["limit"],
                           "y1": b["limit"], "line": {"color": LIMIT, "dash": "dash"}})
    xs = [x for t in traces for x in t["x"] if x and x > 0] + [s["x0"] for s in shapes if s["xref"] == "x"]
    log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 30
    if log:  # plotly places annotations on a log axis by the log of the value (shapes by the value)
        for a in annotations:
            a["x"] = math.log10(a["x"])
    # the legend goes under the plot area: its top left (high accuracy at low cost) is where the front is
    labels = [t["name"] for t in traces if t["showlegend"]]
    return {"data": traces, "layout": {**LAYOUT, "title": title(f"{named} vs {metric_label(cost)}"),
                                       **legend_below(labels, width, plot_height=300),
                                       "xaxis": {"title": {"text": metric_label(cost)}, "type": "log" if log else "linear"},
                                       "yaxis": {"title": {"text": f"validation {named}"}},
                                       "shapes": shapes, "annotations": annotations}}


def front_figures(data: dict) -> dict[str, dict]:
    """One front plot per cost some trial was measured on."""
    measured = {k for r in data["trials"] for k in r["metrics"]}
    costs = [cost for cost in COSTS if cost in measured]
    return {cost: front_figure(data, cost, PAGE_WIDTH / max(1, len(costs))) for cost in costs}


def progress_figure(data: dict) -> dict:
    """Best first objective so far and hypervolume so far, after each finished trial."""
    p = data["progress"]
    points = p["points"]
    x = list(range(1, len(points) + 1))
    text = [f"trial {q['trial']}, finished {q['completed'][:19].replace('T', ' ')}" for q in points]
    traces = [{"type": "scatter", "mode": "lines+markers", "name": f"best {metric_label(p['key'])} so far",
               "x": x, "y": [q["best"] for q in points], "text": text, "line": {"shape": "hv", "color": FRONT}},
              {"type": "scatter", "mode": "markers", "name": f"each trial's {metric_label(p['key'])}",
               "x": x, "y": [q["value"] for q in points], "text": text, "marker": {"color": GREY, "size": 5}}]
    layout = {**LAYOUT, "title": title("Search progress"),
              "xaxis": {"title": {"text": "finished trials (in completion order)"}, "dtick": max(1, len(x) // 10)},
              "yaxis": {"title": {"text": metric_label(p["key"])}}}
    if p["scales"]:
        axes = ", ".join(f"{'1 - ' if s['direction'] == 'maximize' else ''}{metric_label(s['key'])}"
                         f"{' / ' + fmt_count(s['reference']) if s['direction'] == 'minimize' else ''}"
                         for s in p["scales"].values())
        traces.append({"type": "scatter", "mode": "lines", "name": f"hypervolume ({axes}; reference 1, 1)",
                       "x": x, "y": [q["hypervolume"] for q in points], "yaxis": "y2", "text": text,
                       "line": {"shape": "hv", "color": BASE}})
        layout["yaxis2"] = {"title": {"text": "hypervolume"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
    layout.update(legend_below([t["name"] for t in traces], PAGE_WIDTH, plot_height=300))
    if p["scales"]:
        layout["margin"] = {**layout["margin"], "r": 70}
    return {"data": traces, "layout": layout}


def layers_figure(card: dict) -> dict | None:
    """A front member's per-layer decisions: the share of each layer's width kept, with its
    precision and kept rank as text (``None`` for an uncompressed member)."""
    if not card["layers"]:
        return None
    names = [r["layer"] for r in card["layers"]]
    kept = [r["kept"] / r["width"] if r.get("width") else None for r in card["layers"]]
    text = [" ".join(f"{c} {r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in card["columns"]
                     if c in r and c != "ratio") for r in card["layers"]]
    traces = [{"type": "bar", "name": "width kept", "x": names, "y": kept, "text": text, "textposition": "auto",
               "hovertemplate": "%{x}: %{y:.0%} of the width kept<br>%{text}<extra></extra>",
               "marker": {"color": [_precision_color(r.get("precision")) for r in card["layers"]]}}]
    return {"data": traces, "layout": {**LAYOUT, "height": MARGIN["t"] + 200 + 90, "showlegend": False,
                                       "margin": {**MARGIN, "b": 90}, "title": title(f"{_name(card)}: per-layer decisions"),
                                       "xaxis": {"tickangle": -30},
                                       "yaxis": {"title": {"text": "share of width kept"}, "range": [0, 1.05],
                                                 "tickformat": ".0%"}}}


def _name(card: dict) -> str:
    """What a card's figures are titled by: ``trial 3``, or a compress output's own name."""
    return card.get("name") or f"trial {card['trial']}"


def _precision_color(precision: str | None) -> str:
    return {"int8": "#ff7f0e", "fp16": "#2ca02c"}.get(precision or "", BASE)


def sensitivity_figure(card: dict) -> dict | None:
    """Validation accuracy (another task's metric: ``card['sensitivity_metric']``) with one layer
    pruned by each ratio, one curve per layer."""
    if not card["sensitivity"]:
        return None
    traces = [{"type": "scatter", "mode": "lines+markers", "name": layer,
               "x": [float(r) for r in curve], "y": list(curve.values())}
              for layer, curve in card["sensitivity"].items()]
    return {"data": traces, "layout": {**LAYOUT, **legend_below(list(card["sensitivity"]), PAGE_WIDTH, plot_height=220),
                                       "title": title(f"{_name(card)}: sensitivity"),
                                       "xaxis": {"title": {"text": "share of the layer pruned"}, "tickformat": ".0%"},
                                       "yaxis": {"title": {"text": f"validation {card.get('sensitivity_metric', 'accuracy')}"}}}}
