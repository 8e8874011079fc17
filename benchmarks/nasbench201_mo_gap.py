"""Where a multi-objective search's hypervolume falls short on NAS-Bench-201 (accuracy x latency).

For each strategy and dataset, over seeds, at 300 evaluations (as ``benchmarks/nasbench201.py``
runs and scores them: the front chosen by the single-seed accuracies the search saw, scored by the
table's means, as a share of the true front's hypervolume):

- ``found``: the median share of the found front;
- ``evaluated``: the median share of the front rebuilt from the table means of every cell the run
  evaluated (what a run could score had it no seed noise: its coverage);
- ``true_front_evaluated``: how many of the true front's cells the run evaluated (mean);
- ``gap_by_latency``: the median area under the true front's staircase that the found front misses,
  per latency band (ms), in % of the true front's hypervolume (in one run the bands sum to 100 - found; each band is its median over seeds);
- ``every_cell_once``: per dataset, the share a search that evaluated every one of the 15,625 cells
  once (one seed drawn per cell) would score: the ceiling seed noise alone leaves; and the true
  front's cells whose absence costs most hypervolume (:func:`front_cell_shares`).

    python benchmarks/nasbench201_mo_gap.py                      # local, tpe, nsga2, evolution; 10 seeds
    python benchmarks/nasbench201_mo_gap.py --strategies local --seeds 3 --no-write
    python benchmarks/nasbench201_mo_gap.py --longer 600,1000   # also the share after 600 and 1,000
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
from _common import commit_label, package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.study._tabular import (
    found_front,
    front_hypervolume,
    hypervolume,
    load_table,
    open_tabular_study,
    pareto_2d,
    run_tabular,
    true_front,
)

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("cifar10", "cifar100", "imagenet16")
OBJECTIVES = ("val_accuracy", "latency_ms")
BANDS = (0.0, 7.0, 9.0, 11.0, 14.0, 17.0, float("inf"))  # latency bands (ms) of the gap


def best_accuracy_at(acc, cost, grid: np.ndarray, floor: float) -> np.ndarray:
    """For each latency of ``grid``, the best accuracy among the points no slower (``floor`` if none)."""
    order = np.argsort(cost)
    best, c = np.maximum.accumulate(np.asarray(acc, float)[order]), np.asarray(cost, float)[order]
    k = np.searchsorted(c, grid, side="right")
    return np.where(k > 0, best[np.maximum(k - 1, 0)], floor)


def gap_by_band(front_acc, front_cost, tf, n_grid: int = 20001) -> list[float]:
    """The area between the true front's staircase and the given front's, per :data:`BANDS`, in % of
    the true front's hypervolume."""
    grid = np.linspace(min(tf.costs), tf.ref[1], n_grid)
    step = grid[1] - grid[0]
    missed = np.maximum(best_accuracy_at(tf.acc, tf.costs, grid, tf.ref[0])
                        - best_accuracy_at(front_acc, front_cost, grid, tf.ref[0]), 0.0) * step
    return [100 * float(missed[(grid >= lo) & (grid < hi)].sum()) / tf.hypervolume for lo, hi in pairwise(BANDS)]


def one_run(dataset: str, strategy: str, seed: int, n: int, longer: tuple[int, ...] = ()) -> dict:
    table = load_table(dataset)
    tf = true_front(table, OBJECTIVES[1])
    every = run_tabular(open_tabular_study(strategy, OBJECTIVES, seed=seed), table, OBJECTIVES, seed=seed,
                        n_trials=max((n, *longer)))
    records = every[:n]
    front = found_front(records, OBJECTIVES[1])
    means = np.array([table.mean_val[table.row(r["cell"])] for r in records])
    lat = np.array([r[OBJECTIVES[1]] for r in records])
    idx = pareto_2d(means, lat)
    evaluated = {r["cell"] for r in records}
    return {"found": front_hypervolume(records, table, OBJECTIVES[1]),
            "evaluated": hypervolume(means[idx], lat[idx], tf.ref) / tf.hypervolume,
            "true_front_evaluated": sum(k in evaluated for k in tf.keys),
            "found_at": {m: front_hypervolume(every[:m], table, OBJECTIVES[1]) for m in longer},
            "gap": gap_by_band([table.mean_val[table.row(r["cell"])] for r in front],
                               [r[OBJECTIVES[1]] for r in front], tf)}


def every_cell_once(dataset: str, draws: int = 200) -> dict:
    table = load_table(dataset)
    tf = true_front(table, OBJECTIVES[1])
    rng = np.random.default_rng(0)
    n = np.sum(~np.isnan(table.val), axis=1)
    rows, lat = np.arange(len(n)), table.cost(OBJECTIVES[1]).astype(float)
    shares = []
    for _ in range(draws):
        seen = table.val[rows, (rng.random(len(n)) * n).astype(int)]
        idx = pareto_2d(seen, lat)
        shares.append(hypervolume(table.mean_val[idx], lat[idx], tf.ref) / tf.hypervolume)
    return {"median": float(np.median(shares)), "p10": float(np.percentile(shares, 10)),
            "p90": float(np.percentile(shares, 90)), "true_front_size": len(tf.keys)}


def front_cell_shares(dataset: str, top: int = 5) -> list[dict]:
    """The true front's cells whose loss costs most: for each, the share of the true front's
    hypervolume lost when it alone is left out of the table (every other cell still available, so a
    near-equal neighbour makes up for it), largest first."""
    table = load_table(dataset)
    tf = true_front(table, OBJECTIVES[1])
    acc, lat = table.mean_val, table.cost(OBJECTIVES[1]).astype(float)
    out = []
    for key, a, c in zip(tf.keys, tf.acc, tf.costs, strict=True):
        keep = np.ones(len(acc), dtype=bool)
        keep[table.row(key)] = False
        idx = pareto_2d(acc[keep], lat[keep])
        loss = 1 - hypervolume(acc[keep][idx], lat[keep][idx], tf.ref) / tf.hypervolume
        out.append({"cell": key, "accuracy": a, "latency_ms": c, "loss": float(loss)})
    return sorted(out, key=lambda r: -r["loss"])[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="local,tpe,nsga2,evolution")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evaluations", type=int, default=300)
    ap.add_argument("--longer", default="", help="comma-separated evaluation counts: the found front's share "
                    "there too (the runs go on that long)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    package, t0 = package_state(), time.perf_counter()
    rows, ceilings = [], {}
    longer = tuple(int(m) for m in args.longer.split(",") if m)
    for dataset in DATASETS:
        ceilings[dataset] = {**every_cell_once(dataset), "costliest_front_cells": front_cell_shares(dataset)}
        for strategy in args.strategies.split(","):
            runs = [one_run(dataset, strategy, s, args.evaluations, longer) for s in range(args.seeds)]
            row = {"dataset": dataset, "strategy": strategy, "seeds": args.seeds,
                   "found": statistics.median(r["found"] for r in runs),
                   "evaluated": statistics.median(r["evaluated"] for r in runs),
                   "true_front_evaluated": statistics.fmean(r["true_front_evaluated"] for r in runs),
                   "true_front_size": ceilings[dataset]["true_front_size"],
                   "gap_by_latency": [float(v) for v in np.median([r["gap"] for r in runs], axis=0)],
                   "found_at": {m: statistics.median(r["found_at"][m] for r in runs) for m in longer}}
            rows.append(row)
            print(json.dumps(row), flush=True)
    bands = [f"{lo:g}-{hi:g} ms" for lo, hi in pairwise(BANDS)]
    doc = {"package": package, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python benchmarks/nasbench201_mo_gap.py " + f"--strategies {args.strategies} --seeds {args.seeds}"
           + (f" --longer {args.longer}" if longer else ""),
           "evaluations": args.evaluations, "bands_ms": bands, "rows": rows, "every_cell_once": ceilings,
           "wall_minutes": (time.perf_counter() - t0) / 60}
    lines = ["# NAS-Bench-201 accuracy x latency: where the hypervolume gap lies", "",
             f"Measured at commit {commit_label(package)} on {doc['date']}; command `{doc['command']}`; "
             f"{doc['wall_minutes']:.1f} min wall-clock (one process on a shared 2-core machine).", "",
             f"At {args.evaluations} evaluations, medians over seeds: the found front's hypervolume (% of the true "
             "front's; chosen by the single-seed accuracies the search saw, scored by table means); the front "
             "rebuilt from the table means of every cell evaluated (the run's coverage, without seed noise); how "
             "many of the true front's cells were evaluated (mean); and the area the found front misses, per latency "
             "band, in % of the true front's hypervolume (in one run the bands sum to 100 - found; each band is its median over seeds).", "",
             "| dataset | strategy | seeds | found | evaluated, by means | true-front cells evaluated | "
             + " | ".join(f"gap {b}" for b in bands) + "".join(f" | found @{m}" for m in longer) + " |",
             "|" + "---|" * (6 + len(bands) + len(longer))]
    for r in rows:
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['seeds']} | {100 * r['found']:.2f}% | "
                     f"{100 * r['evaluated']:.2f}% | {r['true_front_evaluated']:.1f} of {r['true_front_size']} | "
                     + " | ".join(f"{v:.2f}" for v in r["gap_by_latency"])
                     + "".join(f" | {100 * r['found_at'][m]:.2f}%" for m in longer) + " |")
    lines += ["", "Every cell evaluated once (one seed drawn per cell, 200 draws; the front chosen by the drawn "
              "figures, scored by table means): the ceiling that seed noise alone leaves.", "",
              "| dataset | median | 10th-90th percentile |", "|---|---|---|"]
    lines += [f"| {d} | {100 * c['median']:.2f}% | {100 * c['p10']:.2f}-{100 * c['p90']:.2f}% |"
              for d, c in ceilings.items()]
    lines += ["", "The true front's cells whose loss costs most: the share of the true front's hypervolume lost when "
              "that cell alone is left out of the table (every other cell still there), the five largest per dataset.",
              "", "| dataset | cell | accuracy | latency ms | hypervolume lost |", "|---|---|---|---|---|"]
    lines += [f"| {d} | {r['cell']} | {r['accuracy']:.2f} | {r['latency_ms']:.2f} | {100 * r['loss']:.3f}% |"
              for d, c in ceilings.items() for r in c["costliest_front_cells"]]
    if not args.no_write:
        (args.out / "nasbench201_mo_gap.json").write_text(json.dumps(doc, indent=1) + "\n")
        (args.out / "nasbench201_mo_gap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
