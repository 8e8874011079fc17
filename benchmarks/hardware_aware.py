"""Hardware-aware pruning against plain MAC-uniform pruning, on ONNX Runtime CPU (1 thread).

Two models, trained here: the MNIST-1D paper CNN (Greydanus 2020) and a 2-D CNN on the digits
images with at least 10x its MACs. For each batch size (64 and 1) and latency share (50% and 30%
of the original's predicted latency):

- hardware-aware: a latency table measured here on demand (each operator the first time it is
  needed; the per-model terms calibrated on the model and uniformly pruned copies of it), then
  :func:`slimnas.compress.allocate_by_latency` chooses per-layer channel counts meeting the target,
  weighing latency saved against the validation accuracy each layer's pruning costs (the
  sensitivity curves, as ``compress --auto`` does; channel rounding kept only where it helps);
  the chosen counts are timed here against the original and, where they miss the share, allocated
  again for a predicted target scaled by the miss (up to 3 allocations timed);
- uniform at the same MACs: every prunable layer gets the same ratio, scaled to the MACs of the
  hardware-aware model (what a torch-pruning user writes by hand);
- uniform at the same latency: uniform pruning at a sweep of ratios (``--uniform-curve``, 0.1 to
  0.9), each fine-tuned alike and timed with the others; its accuracy at the hardware-aware
  model's measured latency is read off this curve, linear between the two ratios around it (a
  single uniform model fitted to the latency target lands faster or slower than the
  hardware-aware one, and accuracy at different latencies does not compare).

All get the same fine-tune, under ``--finetune-seeds`` seeds (3): accuracies are the mean over
them. Latency of the original and of every pruned file of a batch size is measured in the same
interleaved rounds (the machine's load hits all alike). Then the hardware-aware model's
precision is chosen per layer (:func:`slimnas.compress.choose_precision`: int8 only where the
runtime makes it faster; QDQ and QOperator compared) and, where int8 was chosen, its file is
timed against fp32. As a yardstick, every allocation on a grid (each layer keeping 15%, 30%,
50%, 70%, 85% or all of its channels) is predicted: the smallest latency share any of them
reaches and the best latency-drop / MAC-drop ratio among those meeting the target say what any
per-layer channel choice can do on this runtime.

- ``compress --auto`` under the same latency budget (``latency_ms<=50%``, a device profile of this
  machine at the batch size, no table): the path a user runs, where the latency allocation is one
  warm start among others (a uniform policy among them, every policy fitted to the budget by
  predicted latency) and ``--auto-trials`` policies are ranked by validation accuracy after a
  short fine-tune and by measured latency. Its chosen ratios get the same fine-tune as the others
  (fp32, L1, no distillation: the allocation is compared, not ``--auto``'s longer recipe) and are
  timed with them.

Targets: measured latency drop >= 0.9x the MAC drop at batch 64 and >= 0.6x at batch 1 (the
hardware-aware models, the allocation alone and through ``--auto``); int8 never slower than fp32 when chosen; accuracy of the hardware-aware
model the same or better (within 0.5 points) than uniform pruning at the same measured latency
(not compared, ``n/a``, where the hardware-aware model is faster than every uniform ratio).

Writes ``benchmarks/results/hardware_aware.{json,md}``.

``--table-only`` allocates by the table alone (no timed allocations), for comparison; it writes
``hardware_aware_table_only.{json,md}``. ``--runtime onnxruntime-rows`` predicts and times a 1-D CNN
as the ``onnx-fp32-rows`` export ships it (the batch as the rows of one image, one GEMM per
convolution for the whole batch; a 2-D CNN as plain ONNX Runtime runs it) and writes
``hardware_aware_rows.{json,md}``; that runtime is fp32 only, so no precision is chosen there.

Usage: ``python benchmarks/hardware_aware.py [--quick] [--table-only] [--runtime onnxruntime-rows] [--train-epochs 60] [--finetune-epochs 10] [--finetune-seeds 3]``
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from _common import package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.compress import (
    CompressionPolicy,
    allocate_by_latency,
    analyze_sensitivity,
    apply_policy,
    choose_precision,
    latency_policy,
    list_prunable_layers,
    measure_artifact,
    measured_share,
    prune_ratios,
    pruned_model,
    scale_to_macs,
    sensitivity_cost,
    widths_to_ratios,
)
from slimnas.data import load_dataset
from slimnas.measure import (
    RUNTIMES,
    count_macs,
    interleaved_latency,
    one_thread,
    onthefly_predictor,
)
from slimnas.models import CNNSpec, ConvLayer, build_model, mnist1d_paper_cnn
from slimnas.spaces import TrainSpec
from slimnas.study import auto_compress
from slimnas.training import fit

RESULTS = Path(__file__).parent / "results"
CALIBRATION_RATIOS = (0.25, 0.5, 0.7)
GRID_KEEP = (0.15, 0.3, 0.5, 0.7, 0.85, 1.0)
#: the uniform curve is denser where accuracy falls steeply with latency (0.3-0.8 on the paper CNN):
#: uniform's accuracy at the hardware-aware model's latency is read off it, linear between points
UNIFORM_CURVE = (0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9)
TARGET_RATIO = {64: 0.9, 1: 0.6}
ACC_TOLERANCE = 0.005


def conv2d_model(shape, n_classes) -> torch.nn.Module:
    spec = CNNSpec(layers=(ConvLayer(64, 3, 1), ConvLayer(96, 3, 1, pool="max"), ConvLayer(128, 3, 1)),
                   batch_norm=True, head="gap")
    return build_model(spec, shape, n_classes)


MODELS = {
    "paper_cnn": {"title": "MNIST-1D paper CNN", "dataset": "mnist1d",
                  "build": lambda shape, n: mnist1d_paper_cnn(), "train": TrainSpec(lr=2e-2, batch_size=64)},
    "cnn2d": {"title": "2-D CNN on digits (64-96-128 channels, BatchNorm, GAP)", "dataset": "digits",
              "build": conv2d_model, "train": TrainSpec(lr=1e-2, batch_size=64)},
}


def uniform_policy(ratios: dict[str, float]) -> CompressionPolicy:
    return CompressionPolicy.of(prune={"ratio": 0.0, "importance": "l1", "layer_ratios": ratios})


def allocation_grid(model, shape, predictor, batch: int) -> list[dict]:
    """Predicted latency share and latency-drop / MAC-drop ratio of every allocation on a grid
    (each prunable layer kept at one of GRID_KEEP of its channels): what any per-layer channel
    choice can reach on this runtime, the yardstick for the hardware-aware path's figures."""
    layers = list_prunable_layers(model, shape)
    base, macs0 = predictor.predict(model, shape, batch=batch).ms, count_macs(model, shape)
    out = []
    for keep in itertools.product(GRID_KEEP, repeat=len(layers)):
        widths = {lay.name: max(1, round(k * lay.out_channels)) for lay, k in zip(layers, keep, strict=True)}
        ratios = widths_to_ratios(widths, {lay.name: lay.out_channels for lay in layers})
        pruned = pruned_model(model, ratios, shape) if ratios else model
        share, mac_share = predictor.predict(pruned, shape, batch=batch).ms / base, count_macs(pruned, shape) / macs0
        out.append({"keep": keep, "share": share,
                    "drop_ratio": (1 - share) / (1 - mac_share) if mac_share < 1 else None})
    return [g for g in out if g["drop_ratio"] is not None]


def finetuned(model, policy, data, args) -> tuple[object, list[float]]:
    """``model`` pruned by ``policy`` and fine-tuned under ``args.finetune_seeds`` seeds: the first
    seed's artifact (the pruned structure, and so MACs and latency, is the same under every seed)
    and each seed's test accuracy. A 10-epoch fine-tune of a small pruned model moves by points
    between seeds, so accuracies are compared as means."""
    first, accs = None, []
    for seed in range(args.finetune_seeds):
        torch.manual_seed(seed)
        art = apply_policy(model, policy, data, epochs=args.finetune_epochs, seed=seed)
        first = art if first is None else first
        accs.append(measure_artifact(art, data, splits=("test",), latency_batches=(), repeats=1)["test_accuracy"])
    return first, accs


def uniform_at(curve: list[dict], latency_ms: float) -> dict:
    """Accuracy of uniform pruning at ``latency_ms``, linear between the two points of the uniform
    curve (measured latency, mean accuracy) around it. Faster than every uniform model: no uniform
    ratio reaches it (``None``); slower than the original: the original's accuracy.

    ``points_per_pct``: the curve's slope there, in points of accuracy per 1% of the original's
    latency: where it is steep, an accuracy gap of a point is a latency gap of about a percent,
    within the timing's spread between rounds."""
    pts = sorted(curve, key=lambda c: c["latency_ms"])
    if latency_ms < pts[0]["latency_ms"]:
        return {"accuracy": None, "between": None, "points_per_pct": None}
    for lo, hi in itertools.pairwise(pts):
        if lo["latency_ms"] <= latency_ms <= hi["latency_ms"]:
            t = (latency_ms - lo["latency_ms"]) / max(hi["latency_ms"] - lo["latency_ms"], 1e-12)
            span = max(hi["latency_share"] - lo["latency_share"], 1e-12)
            return {"accuracy": lo["accuracy"] + t * (hi["accuracy"] - lo["accuracy"]),
                    "between": [lo["ratio"], hi["ratio"]],
                    "points_per_pct": (hi["accuracy"] - lo["accuracy"]) / span}
    return {"accuracy": pts[-1]["accuracy"], "between": [pts[-1]["ratio"], pts[-1]["ratio"]], "points_per_pct": 0.0}


def auto_ratios(model, data, share: float, batch: int, args) -> dict:
    """``compress --auto`` under ``latency_ms<={share}`` on this machine at ``batch`` (a device
    profile without a table): its chosen per-layer ratios, whether its choice met the budget as
    measured, and its run's figures. Precision is left at fp32 and the final fine-tune short: the
    benchmark fine-tunes the ratios itself, alike for every allocation."""
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp) / f"this-cpu-b{batch}.yaml"
        profile.write_text(yaml.safe_dump({"name": f"this-cpu-b{batch}", "runtime": args.runtime, "threads": 1,
                                           "batch": [batch], "precisions": ["fp32"]}))
        t0 = time.perf_counter()
        res = auto_compress(model, data, budget=[f"latency_ms<={round(100 * share)}%"], device_profile=str(profile),
                            n_trials=args.auto_trials, finetune_epochs=args.auto_finetune_epochs, final_epochs=1,
                            refine_epochs=0, precisions=("fp32",), importances=("l1",), seed=0,
                            latency_repeats=args.auto_latency_repeats,
                            early_stopping="median")  # as measured (--auto's default until it became "none")
    return {"ratios": prune_ratios(res.policy), "feasible": res.feasible, "trial": res.trial,
            "trials": len(res.study.trials), "seconds": round(time.perf_counter() - t0, 1)}


def run_model(key: str, args) -> dict:
    m = MODELS[key]
    data = load_dataset(m["dataset"])
    shape, n = data.input_shape, data.n_classes
    torch.manual_seed(0)
    model = m["build"](shape, n)
    fit(model, data.x_train, data.y_train, dataclasses.replace(m["train"], epochs=args.train_epochs),
        x_val=data.x_val, y_val=data.y_val, seed=0, device="cpu")
    model = model.cpu().eval()
    macs0 = count_macs(model, shape)
    names = [lay.name for lay in list_prunable_layers(model, shape)]
    original = apply_policy(model, CompressionPolicy(), data, epochs=0)
    acc0 = measure_artifact(original, data, splits=("test",), latency_batches=(), repeats=1)["test_accuracy"]
    out = {"model": key, "title": m["title"], "dataset": m["dataset"], "input_shape": list(shape), "macs": macs0,
           "test_accuracy": acc0, "runs": [], "uniform_curve": {}}
    # the accuracy cost of each layer's pruning, read off on validation data as compress --auto does
    sens = analyze_sensitivity(model, data)
    # uniform pruning at a sweep of ratios, fine-tuned alike: its accuracy against measured latency
    # (timed with the hardware-aware models, per batch) gives uniform's accuracy at any latency
    curve_arts, curve_accs = {0.0: original}, {0.0: [acc0]}
    for r in args.uniform_curve:
        curve_arts[r], curve_accs[r] = finetuned(model, uniform_policy(dict.fromkeys(names, r)), data, args)
    for batch in args.batches:
        with one_thread():
            copies = [model] + [pruned_model(model, dict.fromkeys(names, r), shape) for r in CALIBRATION_RATIOS]
            predictor = onthefly_predictor([(c, shape) for c in copies], runtime=args.runtime, batches=(batch,),
                                           repeats=args.op_repeats)
            base = predictor.predict(model, shape, batch=batch).ms
            grid = allocation_grid(model, shape, predictor, batch)
        rows, files = [], {"original": original.onnx, **{("curve", r): a.onnx for r, a in curve_arts.items() if r}}
        for share in args.shares:
            t0 = time.perf_counter()
            with one_thread():
                # the allocation is timed here and, where it misses the share, aimed again
                # (``measure``): this machine is the target
                measure = None if args.table_only else measured_share(model, shape, batch=batch, rounds=3,
                                                                      repeats=max(10, args.repeats // 4),
                                                                      runtime=args.runtime)
                alloc = allocate_by_latency(model, shape, predictor, share * base, batch=batch,
                                            cost_fn=sensitivity_cost(sens), measure=measure)
            macs_hw = count_macs(pruned_model(model, alloc.ratios, shape), shape)
            uni_ratios, _ = scale_to_macs(model, dict.fromkeys(names, 0.5), shape, macs_hw)
            arts, acc_seeds = {}, {}
            policies = [("hardware_aware", latency_policy(alloc)), ("uniform", uniform_policy(uni_ratios))]
            auto = None
            if args.auto_trials > 0:
                auto = auto_ratios(model, data, share, batch, args)
                policies.append(("auto", uniform_policy(auto["ratios"])))
            for name, policy in policies:
                arts[name], acc_seeds[name] = finetuned(model, policy, data, args)
                files[(name, share)] = arts[name].onnx
            rows.append((share, alloc, uni_ratios, arts, acc_seeds, auto, time.perf_counter() - t0))
        # every model of this batch size timed in the same interleaved rounds: the original, the
        # uniform curve, and each share's hardware-aware and same-MACs uniform models
        with one_thread():
            lat_all = {k: per[batch] for k, per in interleaved_latency(
                files, shape, batches=(batch,), rounds=args.rounds, repeats=args.repeats, runtime=args.runtime,
                warmup=max(10, args.repeats // 5)).items()}
        curve = [{"ratio": r, "latency_ms": lat_all["original" if r == 0 else ("curve", r)],
                  "latency_share": lat_all["original" if r == 0 else ("curve", r)] / lat_all["original"],
                  "macs": count_macs(curve_arts[r].model, shape), "accuracy": sum(a) / len(a),
                  "accuracy_per_seed": a} for r, a in curve_accs.items()]
        out["uniform_curve"][str(batch)] = curve
        for share, alloc, uni_ratios, arts, acc_seeds, auto, secs in rows:
            t0 = time.perf_counter()
            accs = {k: sum(v) / len(v) for k, v in acc_seeds.items()}
            lat = {"original": lat_all["original"], **{k: lat_all[(k, share)] for k in arts}}
            macs = {k: count_macs(a.model, shape) for k, a in arts.items()}
            at_hw = uniform_at(curve, lat["hardware_aware"])
            at_auto = uniform_at(curve, lat["auto"]) if "auto" in lat else None
            reach = [g for g in grid if g["share"] <= share]
            row = {"batch": batch, "latency_share": share, "rounding": alloc.rounding, "met": alloc.met,
                   "measured_share": alloc.measured_share, "allocation_checks": alloc.checks,
                   "widths": alloc.widths, "original_widths": alloc.original, "uniform_ratios": uni_ratios,
                   "predicted_ms": {"original": base, "hardware_aware": alloc.predicted_ms},
                   "latency_ms": lat, "macs": {"original": macs0, **macs},
                   "test_accuracy": {"original": acc0, **accs, "uniform_at_hw_latency": at_hw["accuracy"]},
                   "uniform_at_hw_latency_between": at_hw["between"],
                   "uniform_points_per_pct_latency": at_hw["points_per_pct"], "test_accuracy_per_seed": acc_seeds,
                   **({} if auto is None else {"auto": {**auto, "uniform_at_latency": at_auto}}),
                   "grid": {"allocations": len(grid), "min_share": min(g["share"] for g in grid),
                            "reaching_share": len(reach),
                            "best_drop_ratio": max((g["drop_ratio"] for g in reach), default=None)}}
            for k in arts:
                mac_drop = 1 - macs[k] / macs0
                lat_drop = 1 - lat[k] / lat["original"]
                row[f"{k}_latency_drop"] = lat_drop
                row[f"{k}_mac_drop"] = mac_drop
                row[f"{k}_drop_ratio"] = lat_drop / mac_drop if mac_drop > 0 else float("nan")
            if "int8" in RUNTIMES.get(args.runtime).precisions:
                with one_thread():
                    choice = choose_precision(arts["hardware_aware"].model, shape, predictor=predictor, batch=batch,
                                              calibration=data.x_train, repeats=args.repeats)
                row["precision"] = {"any_int8": choice.any_int8, "int8_format": choice.int8_format,
                                    "reason": choice.reason, "measured": choice.measured}
            else:
                row["precision"] = {"any_int8": False, "int8_format": None, "reason": f"{args.runtime} runs fp32 only",
                                    "measured": {}}
            if row["precision"]["any_int8"]:
                measured = row["precision"]["measured"]
                row["precision"]["int8_not_slower"] = bool(measured["chosen_ms"] <= measured["fp32_file_ms"])
            row["seconds"] = round(secs + time.perf_counter() - t0, 1)
            out["runs"].append(row)
            uni_acc = "-" if at_hw["accuracy"] is None else f"{at_hw['accuracy']:.3f}"
            print(f"{key} b{batch} {share:.0%}: latency drop/MAC drop hw {row['hardware_aware_drop_ratio']:.2f} "
                  f"uniform {row['uniform_drop_ratio']:.2f} (best on the grid {row['grid']['best_drop_ratio']}); "
                  f"acc hw {accs['hardware_aware']:.3f} uniform same MACs {accs['uniform']:.3f} "
                  f"uniform at the same latency {uni_acc}; precision: {row['precision']['reason']}", flush=True)
    return out


def slope_note(gap: float, points_per_pct: float | None) -> dict:
    """Where the hardware-aware model trails uniform, how much latency that gap is worth on
    uniform's curve there (a gap of a point where accuracy moves a point per 1% of latency is
    a latency difference of 1%, about the timing's spread)."""
    if gap >= -ACC_TOLERANCE or not points_per_pct:
        return {}
    return {"reachable": f"uniform's curve there: {points_per_pct:.2f} points per 1% of the latency; "
                         f"the gap is worth {-gap / points_per_pct:.1%} of it"}


def accuracy_target(accuracy: float, uniform: float | None, points_per_pct: float | None, label: str = "") -> dict:
    """The target "the same or better accuracy than uniform pruning at the same measured latency".
    Faster than every uniform ratio (``uniform`` None): not compared (not met, not missed)."""
    out = {"value": None if uniform is None else round(accuracy - uniform, 4),
           "target": f">= -{ACC_TOLERANCE} against uniform at the same measured latency{label}",
           "met": None if uniform is None else bool(accuracy >= uniform - ACC_TOLERANCE)}
    if uniform is None:
        return {**out, "reachable": "no uniform ratio of the curve is as fast: not compared"}
    return {**out, **slope_note(accuracy - uniform, points_per_pct)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 training epoch, few repeats")
    ap.add_argument("--train-epochs", type=int, default=60)
    ap.add_argument("--finetune-epochs", type=int, default=10)
    ap.add_argument("--finetune-seeds", type=int, default=3,
                    help="fine-tunes per pruned model; its accuracy is their mean (default 3)")
    ap.add_argument("--repeats", type=int, default=200, help="timed batches per latency figure")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds")
    ap.add_argument("--op-repeats", type=int, default=50, help="timed repeats per operator of the table")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 1])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.3], help="latency shares of the original")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--uniform-curve", type=float, nargs="+", default=list(UNIFORM_CURVE),
                    help="uniform pruning ratios whose accuracy and latency give uniform's accuracy at any latency")
    ap.add_argument("--auto-trials", type=int, default=16,
                    help="policies compress --auto tries per latency target (0: no --auto rows)")
    ap.add_argument("--auto-finetune-epochs", type=int, default=2, help="--auto's ranking fine-tune")
    ap.add_argument("--auto-latency-repeats", type=int, default=50, help="--auto's timed batches per trial")
    ap.add_argument("--runtime", default="onnxruntime", choices=("onnxruntime", "onnxruntime-rows"),
                    help="where latency is predicted and timed: onnxruntime-rows times a 1-D CNN as the "
                         "onnx-fp32-rows export ships it (results named hardware_aware_rows)")
    ap.add_argument("--table-only", action="store_true",
                    help="allocate by the latency table alone (no timed allocations): the comparison run")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_epochs, args.finetune_epochs, args.repeats, args.rounds, args.op_repeats = 1, 1, 10, 1, 5
        args.finetune_seeds = 1
        args.shares, args.uniform_curve = [0.5], [0.3, 0.6]
        args.auto_trials, args.auto_finetune_epochs, args.auto_latency_repeats = min(args.auto_trials, 3), 1, 5
    out_name = ("hardware_aware_quick" if args.quick else "hardware_aware") + ("_table_only" if args.table_only else "") \
        + ("_rows" if args.runtime == "onnxruntime-rows" else "")
    t0 = time.perf_counter()
    models = [run_model(k, args) for k in args.models.split(",")]
    targets = {}
    if len(models) == 2:
        ratio = models[1]["macs"] / models[0]["macs"]
        targets["cnn2d_macs_x_paper_cnn"] = {"value": round(ratio, 1), "target": ">= 10", "met": ratio >= 10}
    for m in models:
        for r in m["runs"]:
            tag = f"{m['model']}_b{r['batch']}_{int(round(100 * r['latency_share']))}pct"
            want = TARGET_RATIO.get(r["batch"], 0.6)
            v, best = r["hardware_aware_drop_ratio"], r["grid"]["best_drop_ratio"]
            targets[f"{tag}_drop_ratio"] = {
                "value": round(v, 3), "uniform": round(r["uniform_drop_ratio"], 3), "target": f">= {want}",
                "met": bool(v >= want),
                "reachable": ("no allocation reaches the latency share" if best is None else
                              f"best on the grid {best:.2f}" + ("" if best >= want else ": not reached on the grid"))}
            if r["precision"]["any_int8"]:
                targets[f"{tag}_int8_not_slower"] = {"value": r["precision"]["int8_not_slower"], "target": "true",
                                                     "met": r["precision"]["int8_not_slower"]}
            acc = r["test_accuracy"]
            uni = acc["uniform_at_hw_latency"]
            targets[f"{tag}_accuracy_vs_uniform"] = accuracy_target(
                acc["hardware_aware"], uni, r["uniform_points_per_pct_latency"])
            if "auto" in r:
                at = r["auto"]["uniform_at_latency"]
                targets[f"{tag}_auto_drop_ratio"] = {
                    "value": round(r["auto_drop_ratio"], 3), "target": f">= {want} (compress --auto)",
                    "met": bool(r["auto_drop_ratio"] >= want)}
                targets[f"{tag}_auto_accuracy_vs_uniform"] = accuracy_target(
                    acc["auto"], at["accuracy"], at["points_per_pct"], " (compress --auto)")
    result = {"benchmark": "hardware_aware", "quick": args.quick, "args": vars(args),
              "seconds": round(time.perf_counter() - t0, 1), "package": package_state(), "models": models,
              "targets": targets}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{out_name}.json").write_text(json.dumps(result, indent=2))
    md = [f"# Hardware-aware pruning against MAC-uniform pruning ({args.runtime}, CPU, 1 thread)", "",
          f"`{' '.join(['python benchmarks/hardware_aware.py', *(sys.argv[1:] if argv is None else argv)])}`"
          f" — {result['seconds']:.0f} s", "",
          "| model | batch | latency target | rounding | hw share predicted / timed (allocations timed: their shares) | MAC drop hw / uniform | latency drop hw / uniform | "
          "drop ratio hw / uniform / best on grid | smallest share on grid | latency ms hw (share) | "
          "test acc hw / uniform same MACs / uniform at hw's latency (between ratios) / original "
          f"(pruned: mean of {args.finetune_seeds} fine-tune seeds) | int8 chosen |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        for r in m["runs"]:
            a, lat, g = r["test_accuracy"], r["latency_ms"], r["grid"]
            best = "-" if g["best_drop_ratio"] is None else f"{g['best_drop_ratio']:.2f}"
            checks = r.get("allocation_checks") or []
            kept = r["predicted_ms"]["hardware_aware"] / r["predicted_ms"]["original"]
            timed = "-" if r.get("measured_share") is None else f"{r['measured_share']:.2f}"
            seq = ", ".join(f"{c['measured_share']:.2f}" for c in checks)
            uni = ("- (no uniform ratio as fast)" if a["uniform_at_hw_latency"] is None else
                   f"{a['uniform_at_hw_latency']:.3f} ({' - '.join(str(x) for x in r['uniform_at_hw_latency_between'])})")
            md.append(f"| {m['model']} | {r['batch']} | {r['latency_share']:.0%} | {r['rounding']} | "
                      f"{kept:.2f} / {timed} ({len(checks)}: {seq}) | "
                      f"{r['hardware_aware_mac_drop']:.2f} / {r['uniform_mac_drop']:.2f} | "
                      f"{r['hardware_aware_latency_drop']:.2f} / {r['uniform_latency_drop']:.2f} | "
                      f"{r['hardware_aware_drop_ratio']:.2f} / {r['uniform_drop_ratio']:.2f} / {best} | "
                      f"{g['min_share']:.0%} | {lat['hardware_aware']:.4g} "
                      f"({lat['hardware_aware'] / lat['original']:.2f}) | "
                      f"{a['hardware_aware']:.3f} / {a['uniform']:.3f} / {uni} / {a['original']:.3f} | "
                      f"{'yes (' + r['precision']['int8_format'] + ')' if r['precision']['any_int8'] else 'no'} |")
    auto_rows = [(m, r) for m in models for r in m["runs"] if "auto" in r]
    if auto_rows:
        md += ["", f"`compress --auto` under the same latency budget ({args.auto_trials} policies, "
               f"{args.auto_finetune_epochs}-epoch ranking fine-tunes, a device profile of this machine at the "
               "batch size): its chosen ratios, fine-tuned and timed as the others", "",
               "| model | batch | latency target | chosen trial (of) / met as measured | ratios | MAC drop | "
               "latency drop (share) | drop ratio | test acc --auto's ratios / uniform at their latency "
               "(between ratios) | --auto s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for m, r in auto_rows:
            a, at = r["auto"], r["auto"]["uniform_at_latency"]
            uni = ("-" if at["accuracy"] is None else
                   f"{at['accuracy']:.3f} ({' - '.join(str(x) for x in at['between'])})")
            md.append(f"| {m['model']} | {r['batch']} | {r['latency_share']:.0%} | {a['trial']} ({a['trials']}) / "
                      f"{'yes' if a['feasible'] else 'no'} | "
                      + ", ".join(f"{v:.2f}" for v in a["ratios"].values())
                      + f" | {r['auto_mac_drop']:.2f} | {r['auto_latency_drop']:.2f} "
                      f"({r['latency_ms']['auto'] / r['latency_ms']['original']:.2f}) | {r['auto_drop_ratio']:.2f} | "
                      f"{r['test_accuracy']['auto']:.3f} / {uni} | {a['seconds']:.0f} |")
    md += ["", "Uniform pruning (every layer the same ratio; 0: the original), fine-tuned alike: "
           "latency share of the original and mean test accuracy, per batch size", "",
           "| model | batch | " + " | ".join(f"ratio {c['ratio']}" for c in models[0]["uniform_curve"][str(args.batches[0])])
           + " |", "|---|---|" + "---|" * len(models[0]["uniform_curve"][str(args.batches[0])])]
    md += [f"| {m['model']} | {b} | " + " | ".join(f"{c['latency_share']:.2f} / {c['accuracy']:.3f}" for c in curve) + " |"
           for m in models for b, curve in m["uniform_curve"].items()]
    md += ["", "| target | value | wanted | met |", "|---|---|---|---|"]
    md += [f"| {k} | {v['value']} | {v['target']} | {'n/a' if v['met'] is None else v['met']}"
           f"{' (' + v['reachable'] + ')' if 'reachable' in v else ''} |"
           for k, v in targets.items()]
    (RESULTS / f"{out_name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
