"""NAS-Bench-201 with re-evaluation: the leading cells evaluated again on the table's other seeds.

A search on the table reads one seed's validation accuracy per evaluation; returning the cell with
the best single read returns a lucky cell (``results/nasbench201.md``: even reading every cell once
and returning the best read lands 0.19 / 0.51 under CIFAR-100's / ImageNet16-120's optimum in
median). With ``--reevaluate K`` (:mod:`slimnas.study._reevaluate`) the study evaluates the cells of
the ``K`` best layers by their mean over the seeds read (one objective: the ``K`` best cells) again,
each time on a seed not yet read, until each has all its seeds; every re-evaluation is one of the
budget's evaluations. The run returns the best mean among the cells read on all their seeds (two
objectives: the front of the cells' means). A result is scored as in ``nasbench201.py``: the table's
mean over seeds of the returned cell; the front's hypervolume with the table's means, as a share
of the true front's.

Single objective: each strategy, 100 evaluations, with ``--reevaluate K``; the same seeds without it
are read from ``nasbench201.py``'s log (``--baseline-log``; its code path for a run without
re-evaluation is unchanged, and ``--verify`` reruns a few of them here to show they equal). Two
objectives: ehvi under the known-cost protocol (``nasbench201_known_cost.py``), 300 evaluations.

    python benchmarks/nasbench201_reevaluate.py --seed-from 1000 --seeds 10 --ks 1,2,3 --no-write  # tuning
    python benchmarks/nasbench201_reevaluate.py --seeds 30 --ks 1 --mo-k 1 --processes 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import commit_label, package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.study._tabular import (
    front_hypervolume,
    incumbents,
    load_table,
    open_tabular_study,
    run_tabular,
)

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("cifar10", "cifar100", "imagenet16")
STRATEGIES = ("gp", "tpe", "ehvi", "local", "evolution")
MO = ("val_accuracy", "latency_ms")
NEAR = 0.1
TARGET_HV = 0.99


def one_run(job: tuple) -> dict:
    """One search: (kind, dataset, strategy, seed, k, evaluations); kind ``so`` or ``mo``."""
    kind, dataset, strategy, seed, k, n = job
    table = load_table(dataset)
    t0 = time.process_time()
    objectives = ("val_accuracy",) if kind == "so" else MO
    study = open_tabular_study(strategy, objectives, seed=seed, known_costs=table if kind == "mo" else None)
    records = run_tabular(study, table, objectives, seed=seed, n_trials=n, reevaluate=k)
    out = {"kind": kind, "dataset": dataset, "strategy": strategy, "seed": seed, "k": k, "n": len(records),
           "cpu_s": time.process_time() - t0, "reevaluations": len(records) - len({r["cell"] for r in records})}
    near = {table.keys[i] for i in np.flatnonzero(table.mean_val >= table.optimum - NEAR - 1e-9)}
    if kind == "so":
        inc = incumbents(records, averaged=bool(k))
        best = inc[-1]
        out.update(at_n=float(table.mean_val[table.row(best["cell"])]), best_cell=best["cell"],
                   best_seeds_read=best.get("seeds_read", 1),
                   near_evaluated=any(r["cell"] in near for r in records),
                   optimum_evaluated=any(r["cell"] == table.best_key for r in records),
                   curve=[float(table.mean_val[table.row(b["cell"])]) for b in inc])
    else:
        for m in (100, 200, 300):
            if m <= n:
                out[f"hv_{m}"] = front_hypervolume(records[:m], table, MO[1], averaged=bool(k))
                out[f"hv_{m}_single"] = front_hypervolume(records[:m], table, MO[1])  # the same run, single reads
    return out


def baseline(path: Path, seeds: range) -> dict:
    """Single-objective runs without re-evaluation from ``nasbench201.py``'s log: (dataset,
    strategy, seed) -> the table mean of the cell returned at 100 evaluations."""
    out = {}
    if path is None or not path.is_file():
        return out
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if len(r["objectives"]) == 1 and r["strategy"] in STRATEGIES and r["seed"] in seeds and r.get("at_100"):
            out[(r["dataset"], r["strategy"], r["seed"])] = r["at_100"]
    return out


def stats(v: list) -> dict | None:
    v = [x for x in v if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "mean": statistics.fmean(v), "min": min(v), "n": len(v)}


def mo_baseline(path: Path | None) -> dict:
    """ehvi's known-cost runs without re-evaluation from ``nasbench201_known_cost.py``'s log:
    (dataset, seed) -> the hypervolume share at 300 evaluations."""
    if path is None or not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(r["dataset"], r["seed"]): r["hv_300"] for r in rows
            if r["protocol"] == "known-cost" and r["strategy"] == "ehvi" and "hv_300" in r}


def aggregate(runs: list[dict], base: dict, optima: dict, mo_base: dict | None = None) -> dict:
    so, mo = {}, {}
    for r in runs:
        if r["kind"] == "so":
            so.setdefault((r["dataset"], r["strategy"], r["k"]), []).append(r)
        else:
            mo.setdefault((r["dataset"], r["strategy"], r["k"]), []).append(r)
    rows = []
    for (d, s, k), rs in sorted(so.items(), key=lambda kv: (DATASETS.index(kv[0][0]), kv[0][1], kv[0][2])):
        opt = optima[d]
        without = [base.get((d, s, r["seed"])) for r in rs]
        rows.append({"dataset": d, "strategy": s, "k": k, "seeds": len(rs),
                     "at_100": stats([r["at_n"] for r in rs]), "without": stats(without),
                     "gap_median": opt - statistics.median(r["at_n"] for r in rs),
                     "within_0.1_share": float(np.mean([opt - r["at_n"] <= NEAR + 1e-9 for r in rs])),
                     "near_evaluated_share": float(np.mean([r["near_evaluated"] for r in rs])),
                     "optimum_evaluated_share": float(np.mean([r["optimum_evaluated"] for r in rs])),
                     "reevaluations": statistics.fmean(r["reevaluations"] for r in rs),
                     "cpu_s_per_run": statistics.fmean(r["cpu_s"] for r in rs)})
    mo_rows = []
    for (d, s, k), rs in sorted(mo.items(), key=lambda kv: (DATASETS.index(kv[0][0]), kv[0][1], kv[0][2])):
        row = {"dataset": d, "strategy": s, "k": k, "seeds": len(rs), "evaluations": min(r["n"] for r in rs),
               "reevaluations": statistics.fmean(r["reevaluations"] for r in rs),
               "cpu_s_per_run": statistics.fmean(r["cpu_s"] for r in rs),
               "without_300": stats([(mo_base or {}).get((d, r["seed"])) for r in rs])}
        for m in (100, 200, 300):
            for suffix in ("", "_single"):
                v = [r[f"hv_{m}{suffix}"] for r in rs if f"hv_{m}{suffix}" in r]
                if v:
                    row[f"hv_{m}{suffix}"] = {"median": statistics.median(v), "mean": statistics.fmean(v),
                                              "min": min(v), "met_share": float(np.mean(np.array(v) >= TARGET_HV))}
        mo_rows.append(row)
    return {"so": rows, "mo": mo_rows}


def checks(agg: dict, optima: dict) -> list[dict]:
    out = []
    # the best strategy: the (strategy, K) whose worst dataset's median gap at 100 evaluations is least
    rows = {(r["strategy"], r["k"], r["dataset"]): r for r in agg["so"] if r["seeds"] >= 30 and r["k"] > 0}
    pairs = {(s, k) for s, k, _ in rows if all((s, k, d) in rows for d in DATASETS)}
    if pairs:
        s, k = min(sorted(pairs), key=lambda p: max(rows[(*p, d)]["gap_median"] for d in DATASETS))
        for d in DATASETS:
            b = rows[(s, k, d)]
            out.append({"check": f"best strategy ({s} --reevaluate {k}) median within {NEAR} of the optimum at 100 "
                                 f"evaluations (re-evaluations included), {d}", "met": b["gap_median"] <= NEAR + 1e-9,
                        "figures": f"median {b['at_100']['median']:.2f} vs optimum {optima[d]:.2f} (gap "
                                   f"{b['gap_median']:.2f}); without re-evaluation, same seeds: "
                                   f"{fmt(b['without'])}"})
    for r in agg["mo"]:
        if "hv_300" in r:
            without = r.get("without_300")
            out.append({"check": f"accuracy x latency, {r['strategy']} known-cost --reevaluate {r['k']}, median "
                                 f"hypervolume >= 99% of the true front's at 300 evaluations, {r['dataset']}",
                        "met": r["hv_300"]["median"] >= TARGET_HV,
                        "figures": f"{100 * r['hv_300']['median']:.2f}% ({r['seeds']} seeds)" + (
                            f"; without re-evaluation, same seeds: {100 * without['median']:.2f}%" if without else "")})
    return out


def fmt(st: dict | None, key: str = "median") -> str:
    return "-" if st is None else f"{st[key]:.2f}"


def markdown(doc: dict) -> str:
    lines = ["# NAS-Bench-201 with re-evaluation of the leading cells", "",
             f"Measured at commit {commit_label(doc['package'])} on {doc['date']}; command `{doc['command']}`; "
             f"{doc['wall_minutes']:.0f} min wall-clock for this invocation, {doc['processes']} processes "
             "(shared 2-core machine).", "",
             "Single objective, 100 evaluations (re-evaluations included): the table's mean of the returned cell, "
             "median over seeds, with and without re-evaluation (the same seeds). `near evaluated`: share of runs "
             f"that evaluated any cell within {NEAR} of the optimum; `within {NEAR}`: share of runs whose returned "
             "cell is.", "",
             "| dataset | strategy | K | seeds | median @100 | without | mean @100 | without | within 0.1 | "
             "near evaluated | optimum evaluated | re-evaluations | CPU s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["aggregate"]["so"]:
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['k']} | {r['seeds']} | {fmt(r['at_100'])} | "
                     f"{fmt(r['without'])} | {fmt(r['at_100'], 'mean')} | {fmt(r['without'], 'mean')} | "
                     f"{100 * r['within_0.1_share']:.0f}% | {100 * r['near_evaluated_share']:.0f}% | "
                     f"{100 * r['optimum_evaluated_share']:.0f}% | {r['reevaluations']:.1f} | {r['cpu_s_per_run']:.1f} |")
    lines += ["", "Optima: " + ", ".join(f"{d} {v:.2f}" for d, v in doc["optima"].items()), ""]
    if doc["aggregate"]["mo"]:
        lines += ["Accuracy x latency, known-cost protocol: median share of the true front's hypervolume; "
                  "`single reads`: the same runs' front chosen by single reads instead of means.", "",
                  "`without`: the known-cost runs without re-evaluation on the same seeds (``--mo-baseline-log``).", "",
                  "| dataset | strategy | K | seeds | @100 | @200 | @300 | @300 single reads | without @300 | "
                  "runs >= 99% @300 | re-evaluations | CPU s/run |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in doc["aggregate"]["mo"]:
            pc = {m: (f"{100 * r[m]['median']:.2f}%" if m in r else "-") for m in
                  ("hv_100", "hv_200", "hv_300", "hv_300_single")}
            wo = f"{100 * r['without_300']['median']:.2f}%" if r.get("without_300") else "-"
            lines.append(f"| {r['dataset']} | {r['strategy']} | {r['k']} | {r['seeds']} | {pc['hv_100']} | "
                         f"{pc['hv_200']} | {pc['hv_300']} | {pc['hv_300_single']} | "
                         f"{wo} | "
                         f"{100 * r['hv_300']['met_share']:.0f}% | {r['reevaluations']:.1f} | {r['cpu_s_per_run']:.1f} |"
                         if "hv_300" in r else f"| {r['dataset']} | {r['strategy']} | {r['k']} | {r['seeds']} | "
                         f"{pc['hv_100']} | - | - | - | - | - | {r['reevaluations']:.1f} | {r['cpu_s_per_run']:.1f} |")
        lines.append("")
    if doc.get("verify"):
        lines += [f"Without re-evaluation, rerun here against the baseline log: {doc['verify']}", ""]
    lines += ["## Checks", ""] + [f"- {'met' if c['met'] else 'MISSED'}: {c['check']}: {c['figures']}"
                                  for c in doc["checks"]]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--seed-from", type=int, default=0, help="the first seed (held-out seeds for tuning: 1000)")
    ap.add_argument("--ks", default="1", help="comma-separated K of the single-objective runs")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--evaluations", type=int, default=100)
    ap.add_argument("--mo-k", default="", help="comma-separated K of ehvi's known-cost accuracy x latency runs")
    ap.add_argument("--mo-evaluations", type=int, default=300)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--log", type=Path, default=Path("/tmp/nasbench201_reevaluate.jsonl"),
                    help="each run's result, appended as it ends; runs found there are not run again")
    ap.add_argument("--baseline-log", type=Path, default=Path("/tmp/mo_ehvi.jsonl"),
                    help="nasbench201.py's log: the single-objective runs without re-evaluation")
    ap.add_argument("--mo-baseline-log", type=Path, default=Path("/tmp/nb201_known_90408fa.jsonl"),
                    help="nasbench201_known_cost.py's log: ehvi's known-cost runs without re-evaluation")
    ap.add_argument("--verify", type=int, default=0, help="rerun this many seeds per strategy and dataset without "
                    "re-evaluation and compare them with --baseline-log")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--note", action="append", default=[], help="a note for the results file (repeatable)")
    ap.add_argument("--report-only", action="store_true", help="write the results from --log, running nothing")
    ap.add_argument("--measured-at", help="the commit the logged searches ran at, when this invocation only reports")
    ap.add_argument("--wall-minutes", type=float, help="with --measured-at: the wall-clock the searches took")
    args = ap.parse_args()
    seeds = range(args.seed_from, args.seed_from + args.seeds)
    datasets, strategies = args.datasets.split(","), args.strategies.split(",")
    ks = [int(k) for k in args.ks.split(",") if k]
    jobs = [("so", d, s, seed, k, args.evaluations) for k in ks for seed in seeds for s in strategies for d in datasets]
    jobs += [("mo", d, "ehvi", seed, int(k), args.mo_evaluations) for k in args.mo_k.split(",") if k
             for seed in seeds for d in datasets]
    verify_jobs = [("so", d, s, seed, 0, 100) for seed in seeds[:args.verify] for s in strategies for d in datasets]
    key = lambda j: tuple(j[:6]) if isinstance(j, tuple) else (j["kind"], j["dataset"], j["strategy"], j["seed"],  # noqa: E731
                                                                 j["k"], j["n"])
    done = [json.loads(line) for line in args.log.read_text().splitlines()] if args.log.is_file() else []
    have = {key(r) for r in done}
    wanted = {key(j) for j in jobs + verify_jobs}
    runs = [r for r in done if key(r) in wanted]
    # the cheap single-objective runs first, then ehvi's two-objective ones, gp (~0.1 s a trial) last
    todo = [] if args.report_only else sorted((j for j in jobs + verify_jobs if key(j) not in have),
                  key=lambda j: (j[4] == 0, j[2] == "gp", j[0] == "mo"))
    package = package_state()
    if args.measured_at:
        package = {"commit": args.measured_at, "slimnas_dirty": False, "date": package["date"]}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack, args.log.open("a") as log:
        pool = stack.enter_context(mp.get_context("fork").Pool(args.processes)) if args.processes > 1 else None
        results = pool.imap_unordered(one_run, todo, chunksize=1) if pool else map(one_run, todo)
        for i, r in enumerate(results):
            runs.append(r)
            log.write(json.dumps(r) + "\n")
            log.flush()
            if i % 25 == 0:
                print(f"{i}/{len(todo)} runs, {time.perf_counter() - t0:.0f} s", flush=True)
    wall = 60 * args.wall_minutes if args.wall_minutes is not None else time.perf_counter() - t0
    optima = {d: load_table(d).optimum for d in DATASETS}
    base = baseline(args.baseline_log, seeds)
    main_runs = [r for r in runs if r["kind"] == "mo" or r["k"] in ks]  # --ks 0: without, as a row
    agg = aggregate(main_runs, base, optima, mo_baseline(args.mo_baseline_log))
    verified = [r for r in runs if r["k"] == 0 and r["kind"] == "so"]
    same = [abs(r["at_n"] - base[(r["dataset"], r["strategy"], r["seed"])]) < 1e-9 for r in verified
            if (r["dataset"], r["strategy"], r["seed"]) in base]
    verify = f"{sum(same)} of {len(same)} runs return the same cell's mean" if same else ""
    doc = {"package": package, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": " ".join(["python benchmarks/nasbench201_reevaluate.py",
                                *(a for a in sys.argv[1:] if not a.startswith("--note") and a not in args.note)]),
           "seeds": [seeds.start, seeds.stop - 1], "optima": optima, "processes": args.processes,
           "wall_minutes": wall / 60, "aggregate": agg, "verify": verify,
           "baseline_log": str(args.baseline_log), "checks": checks(agg, optima), "notes": list(args.note)}
    text = markdown(doc)
    print(text)
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nasbench201_reevaluate.json").write_text(json.dumps(doc, indent=1, default=float))
        (args.out / "nasbench201_reevaluate.md").write_text(text)


if __name__ == "__main__":
    main()
