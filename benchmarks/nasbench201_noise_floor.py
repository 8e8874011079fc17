"""How much of NAS-Bench-201's accuracy x latency front a search can find when latency is learnt
from evaluated cells only (the original protocol of ``benchmarks/nasbench201.py``): the table's
latency is one measurement per cell, and the front is made of cells measured faster than their
operations explain.

Three parts, all from the table alone (no search is timed, no training):

1. **Latency the operations explain.** Least squares of each cell's latency on its operations, one
   indicator per (edge, operation) and, richer, per (pair of edges, pair of operations), fitted to
   all 15,625 cells (in-sample, so the residual is a lower bound for any model learnt from fewer
   cells); the residual's standard deviation, and the residuals of the true front's cells.
2. **An oracle ceiling.** A search that knows every cell's *mean* accuracy over the table's seeds
   (no seed noise) and the pairwise model's latency of every cell, the residual's spread as its
   uncertainty (Gaussian), picks the cell of largest expected hypervolume gain
   (:func:`slimnas.strategies._ehvi.expected_hvi`, the gain ehvi computes) one at a time, sees its
   latency, and goes on; 10 random cells first, 300 evaluations in all. Its front, scored like every
   run of ``nasbench201.py`` (table means, as a share of the true front's hypervolume), bounds what a
   search that learns latency from evaluated cells can do, as it knows more than any such search.
   The same oracle told every cell's measured latency (the known-cost protocol's information) is
   the control.
3. **Single objective, ImageNet16-120.** How many cells are within 0.1 points of the optimum, the
   spread of one seed's reading of a cell (the pooled standard deviation over the table's seeds of
   the 1,000 best cells), and how many cells lie within one such spread of the optimum: the cells
   one reading cannot tell from the best.

    python benchmarks/nasbench201_noise_floor.py --seeds 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from _common import (  # benchmarks/ is on sys.path when run as a script
    commit_label,
    package_state,
    write_results,
)

from slimnas.strategies._ehvi import expected_hvi
from slimnas.study._tabular import hypervolume, load_table, pareto_2d, true_front

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("cifar10", "cifar100", "imagenet16")
TARGET = 0.99
N_START, N_EVAL = 10, 300


def op_codes(table) -> np.ndarray:
    return np.array([[int(c) for c in k] for k in table.keys])


def latency_fit(table) -> dict:
    """Least-squares latency of every cell from its operations (additive, and with every pair of
    edges), fitted to all cells; the residuals."""
    ops = op_codes(table)
    single = np.concatenate([np.eye(5)[ops[:, i]] for i in range(ops.shape[1])], 1)
    pairs = [np.eye(25)[ops[:, i] * 5 + ops[:, j]] for i, j in itertools.combinations(range(ops.shape[1]), 2)]
    y = table.latency_ms.astype(float)
    out = {}
    for name, x in (("additive", single), ("pairwise", np.concatenate([single, *pairs], 1))):
        w, *_ = np.linalg.lstsq(x, y, rcond=None)
        out[name] = x @ w
    return out


def oracle_run(table, predicted: np.ndarray, spread: float, seed: int) -> dict:
    """The oracle of part 2: mean accuracies known, latency ``predicted`` with Gaussian ``spread``
    (0: the measured latency, known), greedy expected hypervolume gain, :data:`N_EVAL` evaluations."""
    tf = true_front(table, "latency_ms")
    acc, lat = table.mean_val.astype(float), table.latency_ms.astype(float)
    rng = np.random.default_rng(seed)
    tried = np.zeros(len(acc), bool)
    tried[rng.choice(len(acc), N_START, replace=False)] = True
    ref = (-tf.ref[0], tf.ref[1])
    mean = np.column_stack([-acc, predicted])
    sd = np.column_stack([np.full(len(acc), 1e-9), np.full(len(acc), max(spread, 1e-9))])
    hv = {}
    while tried.sum() < N_EVAL:
        idx = np.flatnonzero(tried)
        front = idx[pareto_2d(acc[idx], lat[idx])]
        cand = np.flatnonzero(~tried)
        gain = expected_hvi(mean[cand], sd[cand], np.column_stack([-acc[front], lat[front]]), ref)
        tried[cand[int(np.argmax(gain))]] = True
        if tried.sum() in (100, N_EVAL):
            idx = np.flatnonzero(tried)
            front = idx[pareto_2d(acc[idx], lat[idx])]
            hv[int(tried.sum())] = hypervolume(acc[front], lat[front], tf.ref) / tf.hypervolume
    idx = np.flatnonzero(tried)
    found = {table.keys[i] for i in idx}
    return {"seed": seed, "hv_100": hv[100], "hv_300": hv[N_EVAL],
            "true_front_cells_evaluated": sum(k in found for k in tf.keys)}


def single_objective(table) -> dict:
    """Part 3: the cells near the optimum and the spread of one reading."""
    order = np.argsort(-table.mean_val)[:1000]
    full = order[np.isfinite(table.val[order]).all(1)]
    read_sd = float(np.sqrt(np.mean(np.var(table.val[full], axis=1, ddof=1))))
    gap = table.optimum - table.mean_val
    return {"optimum": table.optimum, "cells_within_0.1": int((gap <= 0.1 + 1e-9).sum()),
            "one_reading_sd": read_sd, "cells_within_one_reading_sd": int((gap <= read_sd).sum()),
            "cells_within_two_reading_sd": int((gap <= 2 * read_sd).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="oracle runs per dataset, each from its own random start")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--note", action="append", default=[], help="a note for the results file (repeatable)")
    args = parser.parse_args()
    t0 = time.time()
    doc = {"package": package_state(), "settings": {"seeds": args.seeds, "start": N_START, "evaluations": N_EVAL},
           "datasets": {}, "notes": args.note}
    for d in DATASETS:
        table = load_table(d)
        tf = true_front(table, "latency_ms")
        fits = latency_fit(table)
        lat = table.latency_ms.astype(float)
        rows = [table.row(k) for k in tf.keys]
        entry = {"latency_sd": float(lat.std()), "true_front_cells": len(tf.keys)}
        for name, pred in fits.items():
            r = lat - pred
            entry[f"{name}_residual_sd"] = float(r.std())
            entry[f"{name}_front_residual_median"] = float(np.median(r[rows]))
            entry[f"{name}_front_share_below_1ms"] = float(np.mean(r[rows] < -1.0))
        pred, spread = fits["pairwise"], entry["pairwise_residual_sd"]
        entry["oracle_model"] = [oracle_run(table, pred, spread, s) for s in range(args.seeds)]
        entry["oracle_known"] = [oracle_run(table, lat, 0.0, s) for s in range(min(args.seeds, 3))]
        entry["single_objective"] = single_objective(table) if d == "imagenet16" else None
        doc["datasets"][d] = entry
        print(d, json.dumps({k: v for k, v in entry.items() if not k.startswith("oracle")}),
              "oracle median", np.median([r["hv_300"] for r in entry["oracle_model"]]), flush=True)
    doc["seconds"] = time.time() - t0
    if not args.no_write:
        write_results(args.out, "nasbench201_noise_floor", doc, markdown(doc))
    else:
        print(markdown(doc))


def markdown(doc: dict) -> str:
    med = lambda rows, k: float(np.median([r[k] for r in rows]))  # noqa: E731
    lines = ["# NAS-Bench-201: what the table's noise leaves a search (latency measured once per cell, accuracy read on one seed)", "",
             f"Measured at commit {commit_label(doc['package'])} on {doc['package']['date']}; command "
             f"`python benchmarks/nasbench201_noise_floor.py --seeds {doc['settings']['seeds']}`; "
             f"{doc['seconds'] / 60:.1f} min wall-clock. No search is run: every figure is read from the table.", "",
             "## Latency the operations explain", "",
             "Least squares of each cell's latency on its operations, fitted to all 15,625 cells (in-sample: no model "
             "learnt from fewer cells does better); the true front's cells (table means x latency) by their residual.",
             "", "| dataset | latency sd ms | additive residual sd | pairwise residual sd | true-front cells | "
             "their median residual ms (pairwise) | share of them > 1 ms faster than predicted |",
             "|---|---|---|---|---|---|---|"]
    for d, e in doc["datasets"].items():
        lines.append(f"| {d} | {e['latency_sd']:.2f} | {e['additive_residual_sd']:.2f} | {e['pairwise_residual_sd']:.2f}"
                     f" | {e['true_front_cells']} | {e['pairwise_front_residual_median']:.2f}"
                     f" | {e['pairwise_front_share_below_1ms']:.0%} |")
    lines += ["", "## An oracle's ceiling under the original protocol", "",
              f"Greedy expected hypervolume gain with every cell's mean accuracy known and its latency predicted by the "
              f"pairwise model (the residual sd as its spread), the measured latency seen once a cell is evaluated; "
              f"{doc['settings']['start']} random cells first, {doc['settings']['evaluations']} evaluations; scored like "
              "`nasbench201.py` (table means, % of the true front's hypervolume). Control: the same oracle told every "
              "cell's measured latency (what the known-cost protocol tells a search).", "",
              "| dataset | oracle runs | median @100 | median @300 | min-max @300 | true-front cells evaluated | "
              "control (latency known) @300 | target |", "|---|---|---|---|---|---|---|---|"]
    for d, e in doc["datasets"].items():
        o, k = e["oracle_model"], e["oracle_known"]
        hv = [r["hv_300"] for r in o]
        lines.append(f"| {d} | {len(o)} | {med(o, 'hv_100'):.2%} | {med(o, 'hv_300'):.2%} | {min(hv):.2%}-{max(hv):.2%}"
                     f" | {med(o, 'true_front_cells_evaluated'):.0f} of {e['true_front_cells']} | "
                     f"{med(k, 'hv_300'):.2%} | {'reachable' if med(o, 'hv_300') >= TARGET else 'below 99%'} |")
    so = doc["datasets"]["imagenet16"]["single_objective"]
    lines += ["", "## Single objective, ImageNet16-120", "",
              f"Optimum {so['optimum']:.2f}; cells within 0.1 of it: {so['cells_within_0.1']}; the spread of one seed's "
              f"reading of a cell (pooled sd over the table's seeds, the 1,000 best cells): {so['one_reading_sd']:.2f} "
              f"points; cells within one such spread of the optimum: {so['cells_within_one_reading_sd']}, within two: "
              f"{so['cells_within_two_reading_sd']}. A search that reads each cell once cannot tell these apart; "
              "reaching 0.1 of the optimum in 100 evaluations means evaluating one of the few cells within it.", ""]
    if doc.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in doc["notes"]], ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
