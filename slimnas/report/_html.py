"""The report as one self-contained HTML file: plotly.js is embedded (from plotly's Python
package), so the file opens offline and loads nothing from the network."""

from __future__ import annotations

import html

from slimnas.measure import metric_label
from slimnas.report._data import format_value, table_keys
from slimnas.report._figures import (
    front_figures,
    layers_figure,
    progress_figure,
    sensitivity_figure,
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
.summary { color: #555; } .note { color: #777; font-size: .9rem; } .warning { color: #a34700; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.text, th.text { text-align: left; }
.plots { display: grid; gap: 1rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5rem 1rem 1rem; margin: 1rem 0; }
"""
# the toolbar keeps saving a picture, zooming, panning and resetting: a short row in the top right
# corner, above the title (see slimnas.report._figures.title)
PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
                                          "hoverClosestCartesian", "hoverCompareCartesian", "toggleSpikelines"]}


def _plot(fig: dict | None, div_id: str) -> str:
    if fig is None:
        return ""
    import plotly.io as pio

    height = f"{fig['layout'].get('height', 420)}px"
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOT_CONFIG,
                       default_height=height, validate=True)


def _table(headers: list[str], rows: list[list], text_columns: int = 0) -> str:
    """A table; the first ``text_columns`` columns are left-aligned text."""
    def cell(tag: str, i: int, value) -> str:
        cls = ' class="text"' if i < text_columns else ""
        return f"<{tag}{cls}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _models_table(data: dict, rows: list[dict], *, state: bool = False) -> str:
    keys = table_keys(data, rows)
    headers = ["trial", *(["state"] if state else []), "architecture", "compression", *map(metric_label, keys)]
    body = [[r["trial"], *([r["state"]] if state else []), r.get("architecture") or "-", r.get("compression") or "-",
             *(format_value(k, r["metrics"].get(k)) for k in keys)] for r in rows]
    return _table(headers, body, text_columns=4 if state else 3)


def _summary(run: dict) -> str:
    budget = ", ".join(b["text"] for b in run["budget"]) or "none"
    parts = [f"status <b>{html.escape(run['status'])}</b>", f"{run['n_finished']} of {run['n_trials']} trials finished",
             f"objectives {html.escape(', '.join(run['objectives']))}", f"budget {html.escape(budget)}",
             f"data {html.escape(str(run['dataset']))}", f"strategy {html.escape(str(run['strategy']))}"]
    if run.get("task", "classification") != "classification":
        parts.insert(4, f"task {html.escape(str(run['task']))}")
    return f'<p class="summary">{" · ".join(parts)}<br>run folder {html.escape(run["folder"])}</p>'


def _front_section(data: dict) -> str:
    run, out = data["run"], ["<h2>Pareto front</h2>"]
    budget = html.escape(", ".join(b["text"] for b in run["budget"]))
    if not data["front"]:
        out.append(f'<p class="note" id="infeasible">No model meets the budget ({budget}). Orange: the '
                   f"{len(data['closest'])} closest, listed below; grey: every other trained trial; dashed: the "
                   "budget's limits, which every point misses on some cost; hover a point for details.</p>")
    else:
        tested = "tested once on the test set" if run["tested"] else "the search has not ended: validation figures only"
        n = len(data["front"])
        out.append(f'<p class="note">{n} model{"s" if n != 1 else ""} on the front of '
                   f'({html.escape(", ".join(run["objectives"]))}), {tested}. Grey: every other trained trial; '
                   "dashed: the budget's limits; hover a point for details.</p>")
    figures = front_figures(data)
    # a fixed column count: each plot measures its cell as its script runs, before later cells exist
    columns = f"grid-template-columns: repeat({max(1, len(figures))}, minmax(0, 1fr))"
    out.append(f'<div class="plots" style="{columns}">' + "".join(_plot(fig, f"front-{cost}")
                                                                for cost, fig in figures.items()) + "</div>")
    out.append(_models_table(data, data["front"] or data["closest"]))
    return "".join(out)


def _card(data: dict, card: dict) -> str:
    keys = table_keys(data, [card])
    out = [f'<div class="card" id="card-{card["trial"]}"><h3>trial {card["trial"]}: {html.escape(card["architecture"])}</h3>',
           _table([metric_label(k) for k in keys], [[format_value(k, card["metrics"].get(k)) for k in keys]])]
    train = card.get("train") or {}
    if train:
        out.append(f'<p class="note">training: {html.escape(", ".join(f"{k} {v}" for k, v in train.items()))}</p>')
    if card["compression"]:
        out.append(f"<p>compression: {html.escape(card['compression'])}</p>")
        out.append(_plot(layers_figure(card), f"layers-{card['trial']}"))
        cols = ["layer", "width", "kept", *card["columns"]]
        out.append(_table(cols, [[r.get(c, "-") if not isinstance(r.get(c), float) else f"{r[c]:.2f}" for c in cols]
                                 for r in card["layers"]], text_columns=1))
        out.append(_plot(sensitivity_figure(card), f"sensitivity-{card['trial']}"))
    out.append("</div>")
    return "".join(out)


def render_html(data: dict) -> str:
    """The whole report page."""
    import plotly.offline

    run = data["run"]
    parts = [f"<h1>{html.escape(run['name'])}</h1>", _summary(run), _front_section(data),
             "<h2>Search progress</h2>", _plot(progress_figure(data), "progress")]
    if data["cards"]:
        parts += ["<h2>Front members</h2>", *(_card(data, c) for c in data["cards"])]
    if data["baselines"]:
        keys = [(data["run"].get("quality") or {}).get("key", "val_accuracy"), "params", "macs"]
        parts += ["<h2>Baselines</h2>", '<p class="note">The trained, uncompressed parents the search compressed.</p>',
                  _table(["architecture", "trials", *map(metric_label, keys)],
                         [[b["architecture"], ", ".join(map(str, b["trials"])),
                           *(format_value(k, b["metrics"].get(k)) for k in keys)] for b in data["baselines"]],
                         text_columns=2)]
    parts += [f"<h2>All trials ({len(data['trials'])})</h2>", _models_table(data, data["trials"], state=True),
              f'<p class="note">slimnas {html.escape(data["slimnas"])}</p>']
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>slimnas report: '
            f'{html.escape(run["name"])}</title><style>{STYLE}</style>'
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head>'
            f'<body>{"".join(parts)}</body></html>')
