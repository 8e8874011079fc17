"""Joint architecture x compression search against searching the architecture first and
compressing after, under one MAC and one bytes budget and the same wall-clock.

- joint: ``slimnas.search`` on ``benchmarks/configs/joint_mnist1d.yaml`` (a CNN space with a
  ``space.compression`` section: per-layer pruning ratios, criterion, per-layer fp32/int8,
  distillation), stopped by a timeout; its front members are compressed ONNX files, fine-tuned
  for ``final_epochs`` and measured in ONNX Runtime. Its whole wall-clock (search + final
  fine-tunes + test evaluation) is the budget the baseline gets.
- sequential: the same file without ``space.compression`` (architecture only, objectives
  accuracy and MACs, no budget: the usual "find good networks, then shrink them to fit"), run
  for ``--nas-share`` of that wall-clock; then, in the time left, each front member (most
  accurate on validation data first) is compressed to the budget by
  :func:`slimnas.study.auto_compress` (per-layer ratios and fp32/int8 precisions, distillation,
  the same short and final fine-tune epochs as the joint search).

Both fronts are scored on test accuracy (ONNX Runtime) of the feasible compressed files: the 2-D
hypervolume of ``(1 - test_accuracy, macs / mac_limit)`` (and of ``bytes / bytes_limit``) with
reference point ``(1, 1)``, both minimised. Targets: the joint front dominates or matches the
sequential one (its hypervolume is at least as large), and also at the accurate end: its most
accurate feasible model is within 0.3 points of the sequential one's or above, and its
hypervolume counting only models >= 85% test accuracy is at least the sequential one's (the joint
search chooses its front after the full fine-tune of its first Pareto layers,
``space.compression.rerank_layers``). Writes ``benchmarks/results/joint_vs_sequential.{json,md}``.

A second joint route, ``supernet``, runs when ``--routes`` names it (the default): the same space,
objectives and budget with ``--strategy supernet`` (a once-for-all supernet, an accuracy
predictor, and a search over sub-networks and per-layer fp32/int8 under both budgets; its
candidates fine-tuned and measured like any trial). Its elastic width is its channel pruning, so
its width choices also hold the channel counts pruning reaches below the space's narrowest layer
(4 and 6 channels: 8 pruned by half and by a quarter). It gets the fixed-ranking route's wall-clock
(search timeout set so that it ends within it) and the same targets against the sequential route.

Usage: ``python benchmarks/joint_vs_sequential.py [--quick] [--search-seconds 300] [--routes joint,supernet]``
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _common import package_state, write_results  # benchmarks/ is on sys.path when run as a script

import slimnas
from slimnas.compress import CompressionPolicy, prune_ratios
from slimnas.data import load_dataset
from slimnas.measure import Budget
from slimnas.study import RunFolder, auto_compress, feasible, hypervolume_2d

HERE = Path(__file__).parent
RESULTS = HERE / "results"
CONFIG = HERE / "configs" / "joint_mnist1d.yaml"
KEEP = ("test_accuracy", "val_accuracy", "params", "macs", "bytes")


def nondominated(points: list[dict], cost: str) -> list[dict]:
    """Members not beaten on both test accuracy and ``cost`` (ties keep one)."""
    out = []
    for p in sorted(points, key=lambda p: (p[cost], -p["test_accuracy"])):
        if not out or p["test_accuracy"] > out[-1]["test_accuracy"]:
            out.append(p)
    return out


#: ``strategy.options`` of the supernet route. The skeleton keeps the sequence long (stride 2 at the
#: second and fourth layers), as ``benchmarks/supernet_mnist1d.py``'s, but ends in a global-average
#: head: under a 6 KB budget a flatten head's weights (positions x channels x 10) take most of the
#: bytes (flatten, at eb838db: hypervolumes 0.75-0.76 on MACs, 0.58-0.59 on bytes, top 89.7% and
#: 91.0% in two seeds; gap, at 883fe32: 0.77-0.78 and 0.68-0.69, top 91.7% and 93.1%). Candidates
#: are fine-tuned from their inherited weights for the parents' 30 epochs. The predictor search
#: takes 800 evaluations, not 1500: with a bytes budget each new point is exported to ONNX at its
#: precisions (about 50 ms here). The supernet's training draws are depth-balanced (the default
#: ``balance_depth``; without it 70% of the in-budget draws were 2-layer and 9% 4-layer, and the
#: route's top was 93.8% and 91.8% in the two seeds, at 0cd9f8d). The supernet trains 240 epochs
#: (about 90 s here), not 80 (about 30 s): the route's 12 candidates finish well within the
#: wall-clock either way, and the longer training lifted the supernet route alone, run for 350 s at
#: 933b354 in seeds 0 / 1, from a top of 93.3% / 92.1% to 94.7% / 94.4% and its 85%-and-over bytes
#: hypervolume from 0.039 / 0.042 to 0.061 / 0.059.
SUPERNET_OPTIONS = {
    "epochs": 240, "warmup_epochs": 36, "n_random": 2,
    "fixed": {"cnn": {"stride": [1, 2, 1, 2], "head": "gap", "residual": False}},
    "n_pairs": 300, "search_trials": 800, "population_size": 64,
    "n_candidates": 12, "per_depth": True, "max_candidates": 12, "finetune_epochs": 30, "finetune_lr": 1.0, "int8_checks": 2,
}
QUICK_SUPERNET_OPTIONS = {**SUPERNET_OPTIONS, "epochs": 4, "warmup_epochs": 1, "n_pairs": 40, "search_trials": 150,
                          "population_size": 16, "n_candidates": 3, "max_candidates": 3, "finetune_epochs": 2}
#: widths the supernet route adds to the space's channel choices: what channel pruning reaches below
#: its narrowest layer (8 channels pruned by a half and a quarter)
PRUNED_WIDTHS = (4, 6)
#: seconds the supernet route's search timeout leaves for the trial running when it strikes
SUPERNET_MARGIN_S = 15.0
ROUTES = ("joint", "supernet")


def supernet_config(raw: dict, quick: bool) -> dict:
    """The joint config as the supernet route runs it: no ``space.compression`` (the supernet
    searches widths and per-layer precision itself), widths that pruning reaches added."""
    out = copy.deepcopy(raw)
    del out["space"]["compression"]
    cnn = out["space"]["cnn"]
    cnn["channels"] = sorted({*PRUNED_WIDTHS, *cnn["channels"]})
    out["strategy"] = {"name": "supernet", "options": QUICK_SUPERNET_OPTIONS if quick else SUPERNET_OPTIONS}
    return out


def front_points(result, budget_of=None) -> list[dict]:
    """The feasible front members of a ``slimnas.search`` result as scored here."""
    return [{"trial": m.trial, **{k: m.metrics[k] for k in KEEP}, "policy": m.metrics.get("policy"),
             "arch": m.candidate["arch"], "compression": m.candidate.get("compression"),
             **({"precision": m.metrics["precision"]} if "precision" in m.metrics else {})}
            for m in result.front if feasible(m.metrics, result.plan.budget)]


USEFUL = 0.8  # a second reading counts only models with at least this test accuracy
TOP = 0.85  # the target's reading of the accurate end: models with at least this test accuracy
TOP_MARGIN = 0.003  # the joint route's most accurate model may trail the sequential one's by this much


def score(points: list[dict], limits: dict[str, float]) -> dict:
    """Hypervolumes of ``(1 - test_accuracy, cost / limit)``: up to ``(1, 1)``, and up to
    ``(1 - USEFUL, 1)`` (only the region of models accurate enough to deploy)."""
    out = {}
    for cost in ("macs", "bytes"):
        pts = [(1 - p["test_accuracy"], p[cost] / limits[cost]) for p in points]
        out[f"hypervolume_{cost}"] = hypervolume_2d(pts, (1.0, 1.0))
        out[f"hypervolume_{cost}_acc{USEFUL * 100:.0f}"] = hypervolume_2d(pts, (1 - USEFUL, 1.0))
        out[f"hypervolume_{cost}_acc{TOP * 100:.0f}"] = hypervolume_2d(pts, (1 - TOP, 1.0))
    out["best_test_accuracy"] = max((p["test_accuracy"] for p in points), default=0.0)
    return out


def coverage(a: list[dict], b: list[dict]) -> float:
    """Share of ``b``'s points weakly dominated by a point of ``a`` (accuracy up, MACs and bytes down)."""
    if not b:
        return 1.0
    hit = sum(any(p["test_accuracy"] >= q["test_accuracy"] and p["macs"] <= q["macs"] and p["bytes"] <= q["bytes"]
                  for p in a) for q in b)
    return hit / len(b)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny training, ~30 s per side")
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--search-seconds", type=float, default=300.0, help="timeout of the joint search")
    ap.add_argument("--nas-share", type=float, default=0.5,
                    help="share of the joint wall-clock the sequential baseline spends on its architecture search")
    ap.add_argument("--auto-trials", type=int, default=8, help="auto_compress trials per compressed front member")
    ap.add_argument("--max-shrink", type=float, default=4.0,
                    help="NAS front members over this multiple of the MAC limit are compressed last")
    ap.add_argument("--routes", default=",".join(ROUTES),
                    help=f"joint routes to run, comma-separated ({', '.join(ROUTES)}); the sequential one always runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="run folders (default: a temporary folder, removed)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    routes = [r for r in args.routes.split(",") if r]
    if "joint" not in routes or set(routes) - set(ROUTES):
        ap.error(f"--routes: 'joint' and any of {list(ROUTES)}, comma-separated (got {args.routes!r})")
    torch.set_num_threads(1)  # tiny models: one thread is fastest and the machine is shared

    raw = yaml.safe_load(args.config.read_text())
    raw["seed"] = args.seed
    if args.quick:
        args.search_seconds, args.auto_trials = 25.0, 2
        raw["training"]["epochs"] = 3
        raw["space"]["compression"].update(finetune_epochs=1, final_epochs=2)
    comp = raw["space"]["compression"]
    budgets = [Budget.parse(b) for b in raw["budget"]]
    limits = {b.metric: b.limit for b in budgets}
    work = args.work or Path(tempfile.mkdtemp(prefix="slimnas-jvs-"))
    work.mkdir(parents=True, exist_ok=True)
    joint_cfg, nas_cfg = work / "joint.yaml", work / "sequential_nas.yaml"
    joint_cfg.write_text(yaml.safe_dump(raw))
    nas_raw = copy.deepcopy(raw)
    del nas_raw["space"]["compression"]
    nas_raw["budget"] = []
    nas_cfg.write_text(yaml.safe_dump(nas_raw))
    data = load_dataset(raw["data"]["dataset"])

    # --- joint: architecture and compression searched together -------------------------------
    t0 = time.time()
    joint = slimnas.search(joint_cfg, timeout=args.search_seconds, out=str(work / "joint"))
    joint_seconds = time.time() - t0
    joint_points = front_points(joint)
    n_joint = len(joint.study.trials)
    print(f"joint: {n_joint} trials, {len(joint.front)} front members in {joint_seconds:.0f}s", file=sys.stderr)

    # --- joint, supernet route: the same wall-clock ---------------------------------------------
    supernet = None
    if "supernet" in routes:
        sn_cfg = work / "supernet.yaml"
        sn_cfg.write_text(yaml.safe_dump(supernet_config(raw, args.quick)))
        t2 = time.time()
        sn = slimnas.search(sn_cfg, timeout=max(1.0, joint_seconds - SUPERNET_MARGIN_S), out=str(work / "supernet"))
        sn_seconds = time.time() - t2
        report = json.loads((Path(sn.run_dir) / "supernet" / "report.json").read_text())
        supernet = {"seconds": round(sn_seconds, 1), "n_trials": len(sn.study.trials), "front": front_points(sn),
                    "timings": report["timings"], "predictor": report["predictor"]["held_out"],
                    "n_candidates": len(report["candidates"])}
        print(f"supernet: {supernet['n_trials']} trials, {len(sn.front)} front members in {sn_seconds:.0f}s",
              file=sys.stderr)

    # --- sequential: architecture first, then compress each front member to the budget ------
    t1 = time.time()
    nas = slimnas.search(nas_cfg, timeout=args.nas_share * joint_seconds, out=str(work / "nas"))
    nas_seconds = time.time() - t1
    print(f"sequential NAS: {len(nas.study.trials)} trials, {len(nas.front)} front members in {nas_seconds:.0f}s",
          file=sys.stderr)
    run = RunFolder(nas.run_dir)
    # most accurate first among members a compression to the budget can plausibly reach (at most
    # --max-shrink x the MAC limit); the larger ones only after those
    mac_limit = limits.get("macs", float("inf"))
    order = sorted(nas.front, key=lambda m: (m.metrics["macs"] > args.max_shrink * mac_limit,
                                             -m.metrics["val_accuracy"]))
    seq_points, attempts, spent = [], [], []
    budget_text = [str(b) for b in budgets]
    for m in order:
        elapsed = time.time() - t1
        expected = sum(spent) / len(spent) if spent else 0.0
        if elapsed + expected > joint_seconds:
            break
        ts = time.time()
        model = run.load_model(m.trial, data.input_shape, data.n_classes)
        res = auto_compress(model, data, budget=budget_text, n_trials=args.auto_trials, precisions=("fp32", "int8"),
                            importances=("l1", "taylor"), finetune_epochs=comp["finetune_epochs"],
                            final_epochs=comp["final_epochs"], seed=args.seed, latency_repeats=5,
                            early_stopping="median")  # as measured (--auto's default until it became "none")
        spent.append(time.time() - ts)
        row = {"trial": m.trial, "nas_val_accuracy": m.metrics["val_accuracy"], "nas_macs": m.metrics["macs"],
               "nas_bytes": m.metrics["bytes"], **{k: res.after[k] for k in KEEP}, "feasible": res.feasible,
               "policy": res.policy.to_dict(), "arch": m.candidate["arch"], "seconds": round(spent[-1], 1)}
        attempts.append(row)
        if res.feasible:
            seq_points.append(row)
        print(f"  compressed NAS trial {m.trial} ({m.metrics['macs']:,} MACs): test {res.after['test_accuracy']:.3f}, "
              f"{res.after['macs']:,} MACs, {res.after['bytes']:,} B, {'ok' if res.feasible else 'over budget'}",
              file=sys.stderr)
    seq_seconds = time.time() - t1

    fronts = {"joint": nondominated(joint_points, "macs"), "sequential": nondominated(seq_points, "macs")}
    if supernet is not None:
        fronts["supernet"] = nondominated(supernet["front"], "macs")
    result = {
        "package": package_state(),
        "settings": {**vars(args), "config": str(args.config), "work": str(work), "out": str(args.out),
                     "budget": budget_text, "training_epochs": raw["training"]["epochs"],
                     "finetune_epochs": comp["finetune_epochs"], "final_epochs": comp["final_epochs"]},
        "joint": {"seconds": round(joint_seconds, 1), "n_trials": n_joint, "front": joint_points,
                  **score(joint_points, limits)},
        "sequential": {"seconds": round(seq_seconds, 1), "nas_seconds": round(nas_seconds, 1),
                       "nas_trials": len(nas.study.trials), "nas_front_size": len(nas.front),
                       "compressed": attempts, "front": seq_points, **score(seq_points, limits)},
        "nondominated_by_macs": fronts,
        "coverage": {"joint_covers_sequential": coverage(joint_points, seq_points),
                     "sequential_covers_joint": coverage(seq_points, joint_points)},
    }
    if supernet is not None:
        result["supernet"] = {**supernet, **score(supernet["front"], limits)}
        result["coverage"].update(supernet_covers_sequential=coverage(supernet["front"], seq_points),
                                  sequential_covers_supernet=coverage(seq_points, supernet["front"]))
    result["checks"] = checks(result)
    name = "joint_vs_sequential_quick" if args.quick else "joint_vs_sequential"
    name += f"_seed{args.seed}" if args.seed else ""
    write_results(args.out, name, result, markdown(result))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def checks(result: dict) -> dict:
    """The targets, for each joint route against the sequential one: ``{name: {route, joint,
    sequential, met}}``."""
    out, s = {}, result["sequential"]
    top = f"hypervolume_{{}}_acc{TOP * 100:.0f}"
    targets = [("hypervolume (test accuracy x MACs) >= sequential", "hypervolume_macs", 0.0),
               ("hypervolume (test accuracy x bytes) >= sequential", "hypervolume_bytes", 0.0),
               (f"most accurate feasible model within {TOP_MARGIN * 100:.1f} points of sequential's or above",
                "best_test_accuracy", TOP_MARGIN),
               *((f"hypervolume (test accuracy x {cost}) of models >= {TOP:.0%} test accuracy >= sequential",
                  top.format(cost), 0.0) for cost in ("macs", "bytes"))]
    for route in [r for r in ROUTES if r in result]:
        j = result[route]
        for name, key, margin in targets:
            out[f"{ARM_NAMES[route]} {name}"] = {"route": route, "joint": j[key], "sequential": s[key],
                                                 "met": j[key] >= s[key] - margin}
    return out


def _arch(arch: dict) -> str:
    layers = "-".join(f"{c['channels']}k{c['kernel']}s{c['stride']}" for c in arch.get("layers", []))
    return f"{layers}{' res' if arch.get('residual') else ''} {arch.get('head', '')}".strip()


def _policy(doc: dict | None) -> str:
    if not doc:
        return ""
    policy = CompressionPolicy.from_dict(doc)  # results written before policies were lists of steps read too
    ratios = prune_ratios(policy)
    prec = policy.options("quantize").get("layer_precision", {})
    n8 = sum(1 for p in prec.values() if p == "int8")
    prune = "" if not ratios and not policy.options("prune") else (
        f"prune [{', '.join(f'{v:.2f}' for v in ratios.values()) or 'none'}] ({policy.options('prune').get('importance')}); ")
    return f"{prune}int8 {n8}/{len(prec)} layers"


ARM_NAMES = {"joint": "joint", "supernet": "joint (supernet)", "sequential": "sequential"}


def _front_rows(front: list[dict], last) -> list[str]:
    return [f"| {p['trial']} | {p['test_accuracy']:.3f} | {p['val_accuracy']:.3f} | {p['params']:,} | "
            f"{p['macs']:,} | {p['bytes']:,} | {_arch(p['arch'])} | {last(p)} |"
            for p in sorted(front, key=lambda p: p["macs"])]


def markdown(result: dict) -> str:
    s, j, q = result["settings"], result["joint"], result["sequential"]
    sn = result.get("supernet")
    arms = [a for a in ("joint", "supernet", "sequential") if a in result]
    u, t = f"{USEFUL * 100:.0f}", f"{TOP * 100:.0f}"
    lines = [
        "# Joint architecture x compression search vs architecture search then compression (MNIST-1D)", "",
        f"Budget: {', '.join(s['budget'])}. Parents trained {s['training_epochs']} epochs; compression fine-tunes "
        f"{s['finetune_epochs']} epochs to rank, {s['final_epochs']} epochs for the reported models, distilled, "
        "in the joint and sequential arms. Accuracy is test accuracy of the compressed ONNX file in ONNX Runtime.", "",
        f"- joint: `slimnas.search` with `space.compression`, timeout {s['search_seconds']:.0f} s: "
        f"{j['n_trials']} trials, **{j['seconds']:.0f} s** in all (with final fine-tunes).",
    ]
    if sn is not None:
        tm = sn["timings"]
        lines.append(
            f"- joint (supernet): `slimnas.search` with `strategy: supernet` (widths and per-layer fp32/int8 "
            f"searched under both budgets; widths {list(PRUNED_WIDTHS)} added as what pruning reaches), timeout the "
            f"joint arm's wall-clock less {SUPERNET_MARGIN_S:.0f} s: {sn['n_trials']} trials ({sn['n_candidates']} "
            f"supernet candidates), **{sn['seconds']:.0f} s** in all (supernet training {tm['supernet_s']:.0f} s, "
            f"measured pairs {tm['pairs_s']:.0f} s, predictor search {tm['search_s']:.0f} s).")
    lines += [
        f"- sequential: architecture-only search for {q['nas_seconds']:.0f} s ({q['nas_trials']} trials, "
        f"{q['nas_front_size']} front members), then `auto_compress` ({s['auto_trials']} trials each) of "
        f"{len(q['compressed'])} front members in the time left: **{q['seconds']:.0f} s** in all.", "",
        "| arm | hypervolume (1-acc, MACs/limit) | hypervolume (1-acc, bytes/limit) | "
        f"same, models >= {TOP:.0%} (MACs) | same, models >= {TOP:.0%} (bytes) | most accurate | feasible models |",
        "|---|---|---|---|---|---|---|",
    ]
    for a in arms:
        r = result[a]
        lines.append(f"| {ARM_NAMES[a]} | {r['hypervolume_macs']:.4f} | {r['hypervolume_bytes']:.4f} | "
                     f"{r[f'hypervolume_macs_acc{t}']:.4f} | {r[f'hypervolume_bytes_acc{t}']:.4f} | "
                     f"{r['best_test_accuracy']:.3f} | {len(r['front'])} |")
    lines += [
        "", f"The same, counting only models with test accuracy >= {USEFUL:.0%} (reference point "
        f"({1 - USEFUL:.1f}, 1)): " + "; ".join(
            f"{ARM_NAMES[a]} {result[a][f'hypervolume_macs_acc{u}']:.4f} (MACs), "
            f"{result[a][f'hypervolume_bytes_acc{u}']:.4f} (bytes)" for a in arms) + ".",
        "", "Most accurate feasible model: " + "; ".join(
            f"{ARM_NAMES[arm]} {b['test_accuracy']:.3f} at {b['macs']:,} MACs, {b['bytes']:,} B (trial {b['trial']})"
            for arm, b in ((arm, max(result[arm]["front"], key=lambda p: p["test_accuracy"]))
                           for arm in arms if result[arm]["front"])) + ".",
        "", f"Coverage: {result['coverage']['joint_covers_sequential']:.0%} of the sequential models are weakly "
        f"dominated (test accuracy, MACs and bytes) by a joint one; {result['coverage']['sequential_covers_joint']:.0%} "
        "the other way." + ("" if sn is None else
                            f" Supernet route: {result['coverage']['supernet_covers_sequential']:.0%} of the sequential "
                            f"models dominated by one of its models; {result['coverage']['sequential_covers_supernet']:.0%} "
                            "the other way."), "",
        "## Joint front", "", "| trial | test acc | val acc | params | MACs | bytes | architecture | compression |",
        "|---|---|---|---|---|---|---|---|", *_front_rows(j["front"], lambda p: _policy(p["compression"])),
    ]
    if sn is not None:
        lines += ["", "## Joint (supernet) front", "",
                  "| trial | test acc | val acc | params | MACs | bytes | architecture | precision per layer |",
                  "|---|---|---|---|---|---|---|---|", *_front_rows(sn["front"], lambda p: p.get("precision", "")), "",
                  "Predictor on held-out pairs: " + "; ".join(
                      f"{k}: Spearman {v['spearman']:.3f}" for k, v in sn["predictor"].items()) + "."]
    lines += ["", "## Sequential: architecture-search front members, compressed", "",
              "| NAS trial | NAS val acc | NAS MACs | test acc | val acc | params | MACs | bytes | fits | "
              "architecture | compression |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in q["compressed"]:
        lines.append(f"| {p['trial']} | {p['nas_val_accuracy']:.3f} | {p['nas_macs']:,} | {p['test_accuracy']:.3f} | "
                     f"{p['val_accuracy']:.3f} | {p['params']:,} | {p['macs']:,} | {p['bytes']:,} | "
                     f"{'yes' if p['feasible'] else 'no'} | {_arch(p['arch'])} | {_policy(p['policy'])} |")
    lines += ["", "## Target", ""]
    for name, c in result["checks"].items():
        lines.append(f"- [{'x' if c['met'] else ' '}] {name}: {ARM_NAMES[c.get('route', 'joint')]} {c['joint']:.4f}, "
                     f"sequential {c['sequential']:.4f}")
    lines += ["", f"Settings: { {k: v for k, v in s.items() if k not in ('work', 'out')} }", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--render"]:  # rewrite the .md from a results .json (presentation only)
        path = Path(sys.argv[2])
        doc = json.loads(path.read_text())
        lims = {b.metric: b.limit for b in map(Budget.parse, doc["settings"]["budget"])}
        for arm in [a for a in ("joint", "supernet", "sequential") if a in doc]:  # derived from the stored
            doc[arm].update(score(doc[arm]["front"], lims))  # fronts, so older files gain new readings
        doc["checks"] = checks(doc)
        path.write_text(json.dumps(doc, indent=2, default=str))
        path.with_suffix(".md").write_text(markdown(doc))
    else:
        main()
