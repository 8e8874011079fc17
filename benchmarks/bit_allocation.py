"""Mixed precision per layer under a bytes budget against uniform int8, on the MNIST-1D paper CNN.

For each seed the paper CNN (Greydanus 2020) is trained on the built-in MNIST-1D data; its fp32
and uniform static int8 files are written. The budget is 0.6x the int8 file's bytes. Then:

- ``allocated``: each layer's precision among fp32, fp16, int8, int4, palette8, palette4 and
  palette2 allocated under that budget from each layer's measured sensitivity (its file alone at
  each precision, validation accuracy in ONNX Runtime), no retraining
  (:mod:`slimnas.compress._bitalloc`, what ``compress --auto`` does for each candidate);
- ``auto``: ``compress --auto --budget bytes<=<budget>`` with the same precisions (pruning ratios
  searched, precisions allocated per candidate, distilled fine-tunes), ``--auto-trials`` trials.

Every figure is of a file: test accuracy in ONNX Runtime, its bytes on disk, its bits per weight
(the ``bits`` metric, read from the file). Checked (as issue 43 words it): at equal accuracy (within
1 point of fp32, mean over seeds), the mixed-precision file is at most 0.6x uniform int8's bytes.

Usage: ``python benchmarks/bit_allocation.py [--seeds 0,1,2] [--epochs 40] [--auto-trials 8]``.
Writes ``bit_allocation.json`` and ``bit_allocation.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import commit_label, package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.compress import CompressionPolicy, apply_policy, quantize_model
from slimnas.compress._bitalloc import MIXED_PRECISIONS, fit_precision, precision_sensitivity
from slimnas.data import load_dataset
from slimnas.export import predict
from slimnas.measure._bits import effective_bits, layer_bits
from slimnas.models import mnist1d_paper_cnn
from slimnas.spaces import TrainSpec
from slimnas.study import auto_compress
from slimnas.training import fit

SHARE = 0.6  # of the int8 file's bytes


def figures(onnx: bytes, data) -> dict:
    logits = predict(onnx, data.x_test)
    return {"test_accuracy": float((logits.argmax(1) == data.y_test.numpy()).mean()), "bytes": len(onnx),
            "bits": round(effective_bits(onnx), 4),
            "layer_weight_bytes": sum(layer.weight_bytes for layer in layer_bits(onnx))}  # the rest: graph, biases, ...


def mixed_precision_rows(model, data, limit: int, *, seed: int, auto_trials: int, allocated: bool = True,
                         **auto_options) -> dict:
    """``allocated`` (each layer's precision under ``limit`` bytes from its measured sensitivity, no
    retraining; unless ``allocated`` is false) and, with ``auto_trials``, ``auto`` (``compress --auto --budget bytes<=limit``): each
    a row of :func:`figures` of the file, plus ``on_disk_bytes`` (the file's size as written) and,
    for ``auto``, the bytes and test accuracy its ``report.json`` shows. Also used by
    ``benchmarks/low_bit.py``."""
    rows = {}
    if allocated:
        t0 = time.time()
        sens = precision_sensitivity(model, data, MIXED_PRECISIONS)
        alloc = fit_precision(model, model, sens, MIXED_PRECISIONS, {"bytes": limit}, data)
        art = apply_policy(model, CompressionPolicy.of(quantize={"mode": "fp32", "layer_precision": alloc.precision}),
                           data, epochs=0)
        rows["allocated"] = {**figures(art.onnx, data), "layer_precision": alloc.precision, "met": alloc.met,
                             "seconds": round(time.time() - t0, 1),
                             "reasons": {n: r["reason"] for n, r in alloc.reasons.items()}}
    if auto_trials:
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            res = auto_compress(model, data, budget=[f"bytes<={limit}"], precisions=MIXED_PRECISIONS, out=tmp,
                                n_trials=auto_trials, seed=seed, **{"latency_repeats": 20, **auto_options})
            shipped = Path(tmp) / "model.onnx"
            report = json.loads((Path(tmp) / "report.json").read_text())
            rows["auto"] = {**figures(shipped.read_bytes(), data), "on_disk_bytes": os.path.getsize(shipped),
                            "reported_bytes": res.after["bytes"], "report_json_bytes": report["after"]["bytes"],
                            "reported_test_accuracy": res.after["test_accuracy"], "feasible": res.feasible,
                            "policy": res.policy.to_dict(), "seconds": round(time.time() - t0, 1)}
    return rows


def run_seed(seed: int, data, epochs: int, auto_trials: int) -> dict:
    torch.manual_seed(seed)
    model = mnist1d_paper_cnn()
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=epochs, lr=1e-2), seed=seed)
    model.eval()
    shape = data.input_shape
    rows = {"fp32": figures(quantize_model(model, shape, mode="fp32"), data),
            "int8": figures(quantize_model(model, shape, mode="int8", calibration=data.x_train[:512]), data)}
    limit = int(SHARE * rows["int8"]["bytes"])
    rows.update(mixed_precision_rows(model, data, limit, seed=seed, auto_trials=auto_trials))
    return {"seed": seed, "limit_bytes": limit, "rows": rows}


def summarize(runs: list[dict]) -> dict:
    labels = list(runs[0]["rows"])
    mean = {k: {m: float(np.mean([r["rows"][k][m] for r in runs])) for m in ("test_accuracy", "bytes", "bits")}
            for k in labels}
    checks = {}
    for k in labels[2:]:
        drop = mean["fp32"]["test_accuracy"] - mean[k]["test_accuracy"]
        share = mean[k]["bytes"] / mean["int8"]["bytes"]
        mean[k].update(drop_points=round(100 * drop, 2), share_of_int8_bytes=round(share, 4))
        checks[f"{k}: file <= {SHARE}x uniform int8's bytes and within 1 point of fp32"] = bool(
            share <= SHARE and drop <= 0.01)
        if k == "auto":
            checks["auto: the bytes reported are the shipped file's"] = all(
                r["rows"]["auto"]["reported_bytes"] == r["rows"]["auto"]["bytes"] for r in runs)
    mean["int8"]["drop_points"] = round(100 * (mean["fp32"]["test_accuracy"] - mean["int8"]["test_accuracy"]), 2)
    return {"summary": mean, "checks": checks}


def markdown(doc: dict) -> str:
    lines = [f"# Bit allocation under a bytes budget, MNIST-1D paper CNN (commit {commit_label(doc['package'])}, "
             f"{doc['package']['date']})", "",
             f"`{doc['command']}`, {doc['wall_s']:.0f} s. Mean over seeds {doc['seeds']}; every figure of a file: "
             f"test accuracy in ONNX Runtime, bytes on disk, bits per weight read from the file. Budget: {SHARE}x the "
             "uniform int8 file's bytes.", "",
             "| file | test acc | drop (points) | bytes | x int8 | bits/weight |", "|---|---:|---:|---:|---:|---:|"]
    for k, row in doc["summary"].items():
        lines.append(f"| {k} | {row['test_accuracy']:.4f} | {row.get('drop_points', 0):.2f} | {row['bytes']:,.0f} | "
                     f"{row['bytes'] / doc['summary']['int8']['bytes']:.3f} | {row['bits']:.2f} |")
    lines += ["", "Per seed (budget in bytes; each layer's precision):", ""]
    for r in doc["runs"]:
        parts = [f"seed {r['seed']}: budget {r['limit_bytes']:,}",
                 "allocated " + ", ".join(f"{n} {p}" for n, p in r["rows"]["allocated"]["layer_precision"].items())
                 + f" ({r['rows']['allocated']['test_accuracy']:.4f}, {r['rows']['allocated']['bytes']:,} B)"]
        if "auto" in r["rows"]:
            a = r["rows"]["auto"]
            q = next(s["options"]["layer_precision"] for s in a["policy"]["steps"] if s["compressor"] == "quantize")
            ratios = next((s["options"].get("layer_ratios", {}) for s in a["policy"]["steps"]
                           if s["compressor"] == "prune"), {})
            parts.append("auto " + ", ".join(f"{n} {p}" for n, p in q.items())
                         + f", pruned {ratios or 'nothing'} ({a['test_accuracy']:.4f}, {a['bytes']:,} B)")
        lines.append("- " + "; ".join(parts))
    lines += ["", "## Checks", ""] + [f"- {'PASS' if ok else 'FAIL'}: {k}" for k, ok in doc["checks"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--auto-trials", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    t0 = time.time()
    data = load_dataset("mnist1d")
    runs = [run_seed(s, data, args.epochs, args.auto_trials) for s in seeds]
    doc = {"package": package_state(),
           "command": f"python benchmarks/bit_allocation.py --seeds {args.seeds} --epochs {args.epochs} "
                      f"--auto-trials {args.auto_trials}",
           "seeds": seeds, "epochs": args.epochs, **summarize(runs), "runs": runs, "wall_s": time.time() - t0}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bit_allocation.json").write_text(json.dumps(doc, indent=1) + "\n")
    (args.out / "bit_allocation.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
