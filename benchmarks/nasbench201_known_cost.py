"""NAS-Bench-201 accuracy x latency when the strategy knows every cell's latency before evaluating it.

In a real slimnas search a candidate's size, and its latency in the target runtime, can be measured
on the untrained model: only the accuracy needs training. This benchmark runs the searches of
``benchmarks/nasbench201.py`` (accuracy x latency, 300 evaluations, the front chosen by the
single-seed accuracies the search saw and scored by the table's means, as a share of the true front's
hypervolume) under that protocol, ``known-cost``: the study tells the strategy the table's latency of
any cell (``slimnas search --benchmark ... --known-costs``; :class:`slimnas.study._tabular.KnownCosts`),
and an evaluation is still one accuracy lookup. ``ehvi`` then models the accuracy only and takes the
exact expected hypervolume gain of every untried cell; strategies that do not ask for costs search
as they do without it.

The original protocol (costs learnt from the evaluated cells only) is read from
``results/nasbench201.json`` and shown beside, labelled with the commit it ran at; ``--original``
also re-runs the named strategies under it here.

    python benchmarks/nasbench201_known_cost.py --seeds 30                 # ehvi, known-cost
    python benchmarks/nasbench201_known_cost.py --seeds 3 --no-write       # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
from _common import commit_label, package_state  # benchmarks/ is on sys.path when run as a script
from nasbench201_mo_gap import BANDS, gap_by_band

from slimnas.study._tabular import (
    found_front,
    front_hypervolume,
    load_table,
    open_tabular_study,
    run_tabular,
    true_front,
)

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("cifar10", "cifar100", "imagenet16")
OBJECTIVES = ("val_accuracy", "latency_ms")
TARGET = 0.99


def one_run(job: tuple) -> dict:
    dataset, strategy, protocol, seed, n = job
    table = load_table(dataset)
    tf = true_front(table, OBJECTIVES[1])
    t0 = time.process_time()
    study = open_tabular_study(strategy, OBJECTIVES, seed=seed,
                               known_costs=table if protocol == "known-cost" else None)
    records = run_tabular(study, table, OBJECTIVES, seed=seed, n_trials=n)
    front = found_front(records, OBJECTIVES[1])
    evaluated = {r["cell"] for r in records}
    return {"dataset": dataset, "strategy": strategy, "protocol": protocol, "seed": seed, "n": len(records),
            "cpu_s": time.process_time() - t0,
            **{f"hv_{m}": front_hypervolume(records[:m], table, OBJECTIVES[1]) for m in (100, 200, 300) if m <= n},
            "true_front_evaluated": sum(k in evaluated for k in tf.keys), "true_front_size": len(tf.keys),
            "gap": gap_by_band([table.mean_val[table.row(r["cell"])] for r in front],
                               [r[OBJECTIVES[1]] for r in front], tf)}


def key(r) -> tuple:
    return (r["dataset"], r["strategy"], r["protocol"], r["seed"])


def aggregate(runs: list[dict]) -> list[dict]:
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["strategy"], r["protocol"]), []).append(r)
    rows = []
    for (d, s, p), rs in sorted(groups.items(), key=lambda kv: (DATASETS.index(kv[0][0]), kv[0][2], kv[0][1])):
        row = {"dataset": d, "strategy": s, "protocol": p, "seeds": len(rs),
               "evaluations": min(r["n"] for r in rs), "cpu_s_per_run": statistics.fmean(r["cpu_s"] for r in rs),
               "true_front_evaluated": statistics.fmean(r["true_front_evaluated"] for r in rs),
               "true_front_size": rs[0]["true_front_size"],
               "gap_by_latency": [float(v) for v in np.median([r["gap"] for r in rs], axis=0)]}
        for m in (100, 200, 300):
            v = [r[f"hv_{m}"] for r in rs if f"hv_{m}" in r]
            if v:
                row[f"hv_{m}"] = {"median": statistics.median(v), "mean": statistics.fmean(v), "min": min(v),
                                  "p10": float(np.percentile(v, 10)), "met_share": float(np.mean(np.array(v) >= TARGET))}
        rows.append(row)
    return rows


def original(path: Path) -> dict:
    """The original protocol's medians at 300 evaluations, from ``nasbench201.json``."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    out = {"commit": commit_label(doc["package"]), "command": doc["command"], "rows": []}
    for d in DATASETS:
        for s, c in doc["aggregate"].get("mo", {}).get(d, {}).items():
            if c.get("hv_300"):
                out["rows"].append({"dataset": d, "strategy": s, "seeds": c["seeds"],
                                    "hv_100": c["hv_100"]["median"], "hv_300": c["hv_300"]["median"]})
    return out


def markdown(doc: dict) -> str:
    bands = [f"{lo:g}-{hi:g} ms" for lo, hi in pairwise(BANDS)]
    lines = ["# NAS-Bench-201 accuracy x latency with the latency known before evaluation", "",
             f"Measured at commit {commit_label(doc['package'])} on {doc['date']}; command `{doc['command']}`; "
             f"{doc['wall_minutes']:.1f} min wall-clock of this invocation ({doc['processes']} process(es) on a shared "
             "2-core machine; runs already in its log are read, not re-run: see the notes).", "",
             "Protocols. **known-cost**: the study tells the strategy the table's latency of any cell before it is "
             "evaluated, as a real search can measure latency and size on the untrained model "
             "(`slimnas search --benchmark nasbench201:<dataset> --known-costs`); an evaluation is still one "
             "accuracy lookup, 300 of them. ehvi then models the accuracy only and takes the exact expected gain of "
             "the hypervolume over a pool spread along the known latency. **original**: costs are learnt from the evaluated cells only "
             "(the protocol of `nasbench201.md`). Both score a run alike: the front chosen by the single-seed "
             "accuracies the search saw, scored by the table's means, as a share of the true front's hypervolume "
             "(reference: the table's worst accuracy and latency).", "",
             "## Checks", "", "| check | met | figures |", "|---|---|---|"]
    lines += [f"| {c['check']} | {'met' if c['met'] else 'missed'} | {c['figures']} |" for c in doc["checks"]]
    lines += ["", "## Hypervolume share, % of the true front's (this run)", "",
              "| dataset | strategy | protocol | seeds | median @100 | median @200 | median @300 | mean @300 | "
              "10th pct @300 | seeds >= 99% @300 | true-front cells evaluated | "
              + " | ".join(f"gap {b}" for b in bands) + " | CPU s a run |", "|" + "---|" * (12 + len(bands))]
    for r in doc["rows"]:
        h = {m: r.get(f"hv_{m}") for m in (100, 200, 300)}
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['protocol']} | {r['seeds']} | "
                     + " | ".join("–" if not h[m] else f"{100 * h[m]['median']:.2f}" for m in (100, 200, 300))
                     + (f" | {100 * h[300]['mean']:.2f} | {100 * h[300]['p10']:.2f} | {100 * h[300]['met_share']:.0f}%"
                        if h[300] else " | – | – | –")
                     + f" | {r['true_front_evaluated']:.1f} of {r['true_front_size']} | "
                     + " | ".join(f"{v:.2f}" for v in r["gap_by_latency"]) + f" | {r['cpu_s_per_run']:.0f} |")
    orig = doc.get("original")
    if orig:
        lines += ["", f"## The original protocol (from `nasbench201.json`, measured at {orig['commit']}: "
                  f"`{orig['command']}`)", "", "| dataset | strategy | seeds | median @100 | median @300 |",
                  "|---|---|---|---|---|"]
        for d in DATASETS:
            best = sorted((r for r in orig["rows"] if r["dataset"] == d), key=lambda r: -r["hv_300"])[:3]
            lines += [f"| {d} | {r['strategy']} | {r['seeds']} | {100 * r['hv_100']:.2f} | {100 * r['hv_300']:.2f} |"
                      for r in best]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def checks(rows: list[dict], orig: dict) -> list[dict]:
    out = []
    for d in DATASETS:
        known = {r["strategy"]: r["hv_300"]["median"] for r in rows
                 if r["dataset"] == d and r["protocol"] == "known-cost" and r.get("hv_300")}
        if known:
            s = max(known, key=known.get)
            n = next(r["seeds"] for r in rows if r["dataset"] == d and r["strategy"] == s and r["protocol"] == "known-cost")
            out.append({"check": f"known-cost protocol: median hypervolume >= 99% of the true front's at 300 "
                                 f"evaluations ({s}, {n} seeds), {d}", "met": known[s] >= TARGET,
                        "figures": f"{100 * known[s]:.2f}%"})
        base = {r["strategy"]: r["hv_300"] for r in orig.get("rows", []) if r["dataset"] == d}
        if base:
            s = max(base, key=base.get)
            out.append({"check": f"original protocol (nasbench201.json at {orig['commit']}): median >= 99% at 300 "
                                 f"evaluations ({s}), {d}", "met": base[s] >= TARGET, "figures": f"{100 * base[s]:.2f}%"})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="ehvi", help="comma-separated, run under the known-cost protocol")
    ap.add_argument("--original", default="", help="comma-separated: also run these under the original protocol")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--seed-from", type=int, default=0, help="run only seeds from this one on (the report covers "
                    "every seed below --seeds found in --log): a second invocation on the same log shares the work")
    ap.add_argument("--evaluations", type=int, default=300)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--log", type=Path, default=Path("/tmp/nasbench201_known_cost.jsonl"),
                    help="each run's result, appended as it ends; runs found there are not run again")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--note", action="append", default=[], help="a note for the results file (repeatable)")
    ap.add_argument("--measured-at", help="the commit the logged searches ran at, when this invocation only reports")
    args = ap.parse_args()
    package, t0 = package_state(), time.perf_counter()
    written_at = commit_label(package)
    if args.measured_at:
        package = {"commit": args.measured_at, "slimnas_dirty": False, "date": package["date"]}
    datasets = [d for d in args.datasets.split(",") if d]
    jobs = [(d, s, p, seed, args.evaluations) for seed in range(args.seeds) for d in datasets
            for p, names in (("known-cost", args.strategies), ("original", args.original))
            for s in names.split(",") if s]
    done = [json.loads(line) for line in args.log.read_text().splitlines()] if args.log.is_file() else []
    wanted = {key({"dataset": j[0], "strategy": j[1], "protocol": j[2], "seed": j[3]}) for j in jobs}
    # one run per (dataset, strategy, protocol, seed): two invocations may both have logged one
    runs = list({key(r): r for r in done if key(r) in wanted and r["n"] >= args.evaluations}.values())
    have = {key(r) for r in runs}
    todo = [j for j in jobs if (j[0], j[1], j[2], j[3]) not in have and j[3] >= args.seed_from]
    with contextlib.ExitStack() as stack, args.log.open("a") as log:
        results = (stack.enter_context(mp.get_context("fork").Pool(args.processes)).imap_unordered(one_run, todo)
                   if args.processes > 1 else map(one_run, todo))
        for r in results:
            runs.append(r)
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(f"{r['dataset']} {r['strategy']} {r['protocol']} seed {r['seed']}: hv@300 "
                  f"{100 * r.get('hv_300', float('nan')):.2f}% ({r['cpu_s']:.0f} s CPU)", flush=True)
    rows = aggregate(runs)
    orig = original(args.out / "nasbench201.json")
    doc = {"package": package, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": f"python benchmarks/nasbench201_known_cost.py --strategies {args.strategies} --seeds {args.seeds}"
           + (f" --original {args.original}" if args.original else "") + f" --processes {args.processes}",
           "evaluations": args.evaluations, "processes": args.processes, "rows": rows, "original": orig,
           "wall_minutes": (time.perf_counter() - t0) / 60, "bands_ms": [f"{lo:g}-{hi:g}" for lo, hi in pairwise(BANDS)]}
    doc["checks"] = checks(rows, orig)
    doc["notes"] = [*args.note,
        *([f"The searches ran at {args.measured_at} (see --log); this file was written from their log at {written_at}."]
          if args.measured_at else []),
        "The known-cost protocol gives the strategy information the original does not: every cell's latency "
        "without spending an evaluation on it. It is what a real slimnas search has (latency and size measured "
        "on the untrained candidate); it is not the protocol of the published NAS-Bench-201 figures, so its "
        "figures are not comparable with the original protocol's as a strategy's merit, only as a setting's.",
        "ehvi under known-cost reads the latency of every untried cell of the 15,625, keeps 2,000 of them spread "
        "evenly over the latency range (40 equal bins, all of a bin with fewer; slimnas.strategies._ehvi."
        "spread_by_cost) and the front's one- and two-gene neighbours, and takes the one of largest exact expected "
        "hypervolume gain; its Gaussian process models the single-seed accuracy only, its kernel half on the "
        "genes' mismatches and half on how many of the six edges take each operation (genes that share a choice "
        "set; slimnas.strategies._ehvi.count_distances), each lengthscale by marginal likelihood.",
        "Wall-clock and CPU seconds are from a 2-core machine shared with other jobs: compare them within this file only."]
    text = markdown(doc)
    if not args.no_write:
        (args.out / "nasbench201_known_cost.json").write_text(json.dumps(doc, indent=1) + "\n")
        (args.out / "nasbench201_known_cost.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
