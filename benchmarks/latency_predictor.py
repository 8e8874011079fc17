"""Predicted against measured ONNX Runtime latency, for candidates of the MNIST-1D and digits spaces.

For each space: a device profile is built on this machine (``slimnas.measure.build_profile``, what
``slimnas device profile`` runs: every operator configuration the space produces timed alone, at
batch 1 and 64, and the per-model terms calibrated on a few whole models); then fresh candidates
(drawn with another seed, never used for calibration) are predicted from the table and measured
as whole ONNX files in ONNX Runtime (CPU, 1 thread), in the same run, in interleaved rounds (every
candidate timed in turn each round, the median of its repeats per round and its fastest round
kept, so a slow spell of the machine, which lasts seconds, does not set any candidate's figure).
Checks the targets: over all candidates (100+ by default), at batch 1 and at batch 64, Spearman
rank correlation >= 0.95 and at least 90% of predictions within +-15% of the measured median.

Writes ``benchmarks/results/latency_predictor.{json,md}``.

Usage: ``python benchmarks/latency_predictor.py [--quick] [--n-candidates 60] [--repeats 50] [--rounds 5]``
(``--n-candidates`` per space; the default gives 120 candidates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _common import package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.measure import (
    accuracy,
    build_profile,
    count_macs,
    interleaved_latency,
    one_thread,
    profile_predictor,
    sample_architectures,
)
from slimnas.models import build_model
from slimnas.study import SearchPlan, load_splits

RESULTS = Path(__file__).parent / "results"
SPACES = {"mnist1d": "mnist1d", "digits": "digits"}  # space name -> data set (the built-in space on its data)
BATCHES = (1, 64)
TARGET_SPEARMAN, TARGET_WITHIN = 0.95, 0.90


def run_space(name: str, dataset: str, args) -> dict:
    plan = SearchPlan.load(None, dataset=dataset)
    splits = load_splits(plan)
    shape, n_classes = splits.input_shape, splits.n_classes
    t0 = time.perf_counter()
    profile = build_profile(name=name, space=plan.space, input_shape=shape, n_classes=n_classes, batches=BATCHES,
                            n_calibration=args.n_calibration, n_check=0, repeats=args.repeats,
                            max_archs=args.max_archs, patience=args.patience, seed=0)
    build_s = time.perf_counter() - t0
    predictor = profile_predictor(profile)
    archs = sample_architectures(plan.space, shape, n_classes, args.n_candidates, seed=1000)
    models, rows = {}, []
    with one_thread():
        for i, arch in enumerate(archs):
            torch.manual_seed(i)
            models[i] = build_model(arch, shape, n_classes).eval()
            row = {"space": name, "candidate": i, "family": type(arch).__name__, "macs": count_macs(models[i], shape)}
            for b in BATCHES:
                row[f"predicted_b{b}"] = predictor.predict(models[i], shape, batch=b).ms
            rows.append(row)
        # every candidate timed in turn each round, the fastest round's median kept
        measured = interleaved_latency(models, shape, batches=BATCHES, rounds=args.rounds, repeats=args.repeats)
    for row in rows:
        for b in BATCHES:
            row[f"measured_b{b}"] = measured[row["candidate"]][b]
        print(f"  {name} {row['candidate'] + 1}/{len(rows)}: " + ", ".join(
            f"b{b} {row[f'predicted_b{b}']:.4f}/{row[f'measured_b{b}']:.4f} ms" for b in BATCHES), flush=True)
    return {"space": name, "dataset": dataset, "input_shape": list(shape), "n_ops": profile.space["n_ops"],
            "profile_seconds": round(build_s, 1), "overhead": profile.overhead, "rows": rows}


def summarize(rows: list[dict]) -> dict:
    return {f"b{b}": accuracy([r[f"predicted_b{b}"] for r in rows], [r[f"measured_b{b}"] for r in rows])
            for b in BATCHES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few operators and candidates")
    ap.add_argument("--n-candidates", type=int, default=60, help="fresh candidates per space")
    ap.add_argument("--n-calibration", type=int, default=24, help="whole models that calibrate each profile")
    ap.add_argument("--repeats", type=int, default=50, help="timed repeats per operator and per candidate and round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds over the candidates (medians kept)")
    ap.add_argument("--max-archs", type=int, default=2000, help="architectures drawn to enumerate the operators")
    ap.add_argument("--patience", type=int, default=300)
    ap.add_argument("--spaces", default=",".join(SPACES))
    args = ap.parse_args(argv)
    if args.quick:
        args.n_candidates, args.n_calibration, args.repeats, args.rounds = 4, 4, 5, 2
        args.max_archs, args.patience = 10, 5
    out_name = "latency_predictor_quick" if args.quick else "latency_predictor"
    t0 = time.perf_counter()
    per_space = [run_space(s, SPACES[s], args) for s in args.spaces.split(",")]
    rows = [r for s in per_space for r in s["rows"]]
    pooled = summarize(rows)
    targets = {}
    for b in BATCHES:
        a = pooled[f"b{b}"]
        targets[f"spearman_b{b}"] = {"value": a["spearman"], "target": f">= {TARGET_SPEARMAN}",
                                     "met": bool(a["spearman"] >= TARGET_SPEARMAN)}
        targets[f"within_15pct_b{b}"] = {"value": a["within_15pct"], "target": f">= {TARGET_WITHIN}",
                                         "met": bool(a["within_15pct"] >= TARGET_WITHIN)}
    targets["n_candidates"] = {"value": len(rows), "target": ">= 100", "met": len(rows) >= 100}
    result = {"benchmark": "latency_predictor", "quick": args.quick, "args": vars(args),
              "seconds": round(time.perf_counter() - t0, 1), "package": package_state(),
              "pooled": pooled, "per_space": {s["space"]: {**{k: v for k, v in s.items() if k != "rows"},
                                                           "accuracy": summarize(s["rows"])} for s in per_space},
              "targets": targets, "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{out_name}.json").write_text(json.dumps(result, indent=2))
    md = ["# Latency predictor: predicted against measured (ONNX Runtime CPU, 1 thread)", "",
          f"`python benchmarks/latency_predictor.py{' --quick' if args.quick else ''}` — {len(rows)} candidates, "
          f"{result['seconds']:.0f} s", "",
          "| space | batch | candidates | Spearman | within ±10% | within ±15% | mean abs error |",
          "|---|---|---|---|---|---|---|"]
    for s in [*per_space, {"space": "all", "rows": rows}]:
        acc = summarize(s["rows"])
        for b in BATCHES:
            a = acc[f"b{b}"]
            md.append(f"| {s['space']} | {b} | {a['n_models']} | {a['spearman']:.3f} | {a['within_10pct']:.0%} | "
                      f"{a['within_15pct']:.0%} | {a['mape']:.1%} |")
    md += ["", "| target | value | wanted | met |", "|---|---|---|---|"]
    md += [f"| {k} | {v['value']} | {v['target']} | {v['met']} |" for k, v in targets.items()]
    (RESULTS / f"{out_name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
