"""The report as Markdown: the same figures as the HTML page, as tables."""

from __future__ import annotations

from slimnas.measure import metric_label
from slimnas.report._data import format_value, table_keys


def _table(headers: list[str], rows: list[list]) -> list[str]:
    def esc(v) -> str:
        return str(v).replace("|", "\\|")

    return ["| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(map(esc, row)) + " |" for row in rows), ""]


def _models(data: dict, rows: list[dict], *, state: bool = False) -> list[str]:
    keys = table_keys(data, rows)
    headers = ["trial", *(["state"] if state else []), "architecture", "compression", *map(metric_label, keys)]
    return _table(headers, [[r["trial"], *([r["state"]] if state else []), r.get("architecture") or "-",
                             r.get("compression") or "-", *(format_value(k, r["metrics"].get(k)) for k in keys)]
                            for r in rows])


def render_markdown(data: dict) -> str:
    run, p = data["run"], data["progress"]
    budget = ", ".join(b["text"] for b in run["budget"]) or "none"
    out = [f"# {run['name']}", "",
           f"Status **{run['status']}**, {run['n_finished']} of {run['n_trials']} trials finished; objectives "
           f"{', '.join(run['objectives'])}; budget {budget}; data {run['dataset']}; "
           f"{'' if run.get('task', 'classification') == 'classification' else 'task ' + run['task'] + '; '}"
           f"strategy {run['strategy']}; "
           f"run folder `{run['folder']}`.", "", "## Pareto front", ""]
    if data["front"]:
        tested = "tested once on the test set" if run["tested"] else "validation figures (the search has not ended)"
        n = len(data["front"])
        out += [f"{n} model{'s' if n != 1 else ''}, {tested}.", "", *_models(data, data["front"])]
    else:
        out += ["No model meets the budget. The closest:", "", *_models(data, data["closest"])]
    out += ["## Search progress", ""]
    if p["points"]:
        last = p["points"][-1]
        hv = f", hypervolume {format_value('hypervolume', last['hypervolume'])}" if last["hypervolume"] is not None else ""
        out += [f"After {len(p['points'])} finished trials: best {metric_label(p['key'])} "
                f"{format_value(p['key'], last['best'])}{hv}.", ""]
        out += _table(["#", "trial", metric_label(p["key"]), "meets budget", "best so far", "hypervolume"],
                      [[i + 1, q["trial"], format_value(p["key"], q["value"]), "yes" if q["feasible"] else "no",
                        format_value(p["key"], q["best"]), format_value("hypervolume", q["hypervolume"])]
                       for i, q in enumerate(p["points"])])
    for card in data["cards"]:
        keys = table_keys(data, [card])
        out += [f"### Trial {card['trial']}: {card['architecture']}", "",
                *_table([metric_label(k) for k in keys], [[format_value(k, card["metrics"].get(k)) for k in keys]])]
        if card["compression"]:
            cols = ["layer", "width", "kept", *card["columns"]]
            out += [f"Compression: {card['compression']}", "",
                    *_table(cols, [[f"{r[c]:.2f}" if isinstance(r.get(c), float) else r.get(c, "-") for c in cols]
                                   for r in card["layers"]])]
        if card["sensitivity"]:
            ratios = sorted({r for curve in card["sensitivity"].values() for r in curve}, key=float)
            named = card.get("sensitivity_metric", "accuracy")
            out += [f"Sensitivity (validation {named} with only this layer pruned):", "",
                    *_table(["layer", *(f"{float(r):.0%}" for r in ratios)],
                            [[layer, *(format_value("val_accuracy", curve.get(r)) for r in ratios)]  # 3 decimals
                             for layer, curve in card["sensitivity"].items()])]
    if data["baselines"]:
        keys = [(data["run"].get("quality") or {}).get("key", "val_accuracy"), "params", "macs"]
        out += ["## Baselines", "", *_table(["architecture", "trials", *map(metric_label, keys)],
                                            [[b["architecture"], ", ".join(map(str, b["trials"])),
                                              *(format_value(k, b["metrics"].get(k)) for k in keys)]
                                             for b in data["baselines"]])]
    out += [f"## All trials ({len(data['trials'])})", "", *_models(data, data["trials"], state=True)]
    return "\n".join(out)
