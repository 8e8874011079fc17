"""Compression benchmark on the MNIST-1D paper CNN (Greydanus 2020), trained in the same run.

Writes ``benchmarks/results/compress_mnist1d.{json,md}``: a before/after table for structured
pruning to 50% MACs (L1 vs Taylor), + distillation, + int8, low-rank, clustering and the whole
chain, with every figure measured on the artifact itself (accuracy and latency in ONNX Runtime),
and the issue's three targets checked:

- structured pruning's latency drop >= 0.8 x its MAC drop (ratios within this run, batch 64;
  batch 1 reported too: at this size it is dominated by per-operator overhead);
- int8 weight payload <= 0.3 x the fp32 weight payload (file overhead reported apart);
- 50% MACs + distillation + int8 loses <= 1 point of test accuracy against the unpruned model.

Usage: ``python benchmarks/compress_mnist1d.py [--epochs 200] [--finetune 30] [--seed 0]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import package_state, write_results  # benchmarks/ is on sys.path when run as a script

from slimnas.compress import (
    CompressedModel,
    CompressionPolicy,
    LowRankFactorizer,
    OnnxQuantizer,
    Pipeline,
    Retrain,
    StructuredPruner,
    WeightClusterer,
    list_prunable_layers,
    measure_artifact,
    quantize_model,
    scale_to_macs,
)
from slimnas.data import load_dataset
from slimnas.measure import count_macs, interleaved_latency
from slimnas.models import mnist1d_paper_cnn
from slimnas.spaces import TrainSpec
from slimnas.training import evaluate, fit

RESULTS = Path(__file__).parent / "results"
BATCHES = (1, 64)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=400, help="training epochs of the unpruned CNN")
    ap.add_argument("--finetune", type=int, default=60, help="retraining epochs after each compression step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=9, help="latency rounds (the fastest round's median kept)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # tiny model: one thread is fastest and avoids contention noise
    t0 = time.time()
    data = load_dataset("mnist1d")
    shape = data.input_shape

    torch.manual_seed(args.seed)
    base = mnist1d_paper_cnn()
    fit(base, data.x_train, data.y_train, TrainSpec(lr=1e-2, epochs=args.epochs, batch_size=128), x_val=data.x_val,
        y_val=data.y_val, seed=args.seed)
    base.eval()
    print(f"trained in {time.time() - t0:.0f}s: val {evaluate(base, data.x_val, data.y_val)['accuracy']:.3f}",
          file=sys.stderr)

    base_macs = count_macs(base, shape)
    uniform = {layer.name: 0.5 for layer in list_prunable_layers(base, shape)}
    ratios, macs = scale_to_macs(base, uniform, shape, base_macs // 2)
    ft = TrainSpec(lr=3e-3, epochs=args.finetune, batch_size=128, schedule="cosine")
    plain = Retrain(epochs=args.finetune, train=ft, seed=args.seed)
    distil = Retrain(epochs=args.finetune, train=ft, distill=True, temperature=4.0, alpha=0.7, seed=args.seed)

    def prune(importance: str, retrain: Retrain) -> StructuredPruner:
        return StructuredPruner(ratio=0.0, importance=importance, layer_ratios=ratios, retrain=retrain)

    artifacts = {"unpruned fp32": CompressedModel(base, quantize_model(base, shape, mode="fp32"), shape,
                                                  CompressionPolicy())}

    def run(name: str, pipe: Pipeline) -> None:
        pipe.fit(base, data)
        onnx = pipe.onnx_ or quantize_model(pipe.model_, shape, mode="fp32")
        storage = getattr(pipe.named_steps.get("cluster"), "encoded_bytes_", None)
        artifacts[name] = CompressedModel(pipe.model_, onnx, shape, CompressionPolicy(), report=pipe.report_,
                                          storage_bytes=storage)
        print(f"{name}: done at {time.time() - t0:.0f}s", file=sys.stderr)

    for imp, label in [("l1", "L1"), ("taylor", "Taylor")]:
        run(f"structured 50% MACs, {label}", Pipeline([("prune", prune(imp, plain))]))
    # the criterion for the distilled variants is chosen on validation data, never on test data
    val = {imp: evaluate(artifacts[f"structured 50% MACs, {label}"].model, data.x_val, data.y_val)["accuracy"]
           for imp, label in [("l1", "L1"), ("taylor", "Taylor")]}
    best = max(val, key=val.get)
    label = {"l1": "L1", "taylor": "Taylor"}[best]
    variants = {
        f"structured 50% MACs, {label} + distillation": Pipeline([("prune", prune(best, distil))]),
        f"structured 50% MACs, {label} + distillation + int8": Pipeline([
            ("prune", prune(best, distil)), ("quantize", OnnxQuantizer(mode="int8", qat=distil))]),
        "int8 (static, per-channel)": Pipeline([("quantize", OnnxQuantizer(mode="int8", qat=distil))]),
        "low-rank (SVD, 50% rank) + distillation": Pipeline([
            ("lowrank", LowRankFactorizer(rank_ratio=0.5, retrain=distil))]),
        "clustering (k=16 per layer) + distillation": Pipeline([
            ("cluster", WeightClusterer(n_clusters=16, retrain=distil))]),
        f"chain: prune 50% MACs ({label}) + low-rank + cluster + int8, distilled": Pipeline([
            ("prune", prune(best, distil)), ("lowrank", LowRankFactorizer(rank_ratio=0.5, retrain=distil)),
            ("cluster", WeightClusterer(n_clusters=16, retrain=distil)),
            ("quantize", OnnxQuantizer(mode="int8", qat=distil))]),
    }
    for name, pipe in variants.items():
        run(name, pipe)

    rows = {name: measure_artifact(art, data, latency_batches=(1,), repeats=20) for name, art in artifacts.items()}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i, (name, art) in enumerate(artifacts.items()):
            paths[name] = Path(tmp) / f"{i}.onnx"
            paths[name].write_bytes(art.onnx)
        lat = interleaved_latency(paths, shape, batches=BATCHES, warmup=20, rounds=args.rounds, repeats=200)
    for name, row in rows.items():
        row.update(latency_ms_b1=lat[name][1], latency_ms_b64=lat[name][64], latency_ms=lat[name][1])

    ref = rows["unpruned fp32"]
    pruned = rows[f"structured 50% MACs, {label} + distillation"]
    mac_drop = 1 - pruned["macs"] / ref["macs"]
    lat_drop = {b: 1 - pruned[f"latency_ms_b{b}"] / ref[f"latency_ms_b{b}"] for b in BATCHES}
    int8 = rows["int8 (static, per-channel)"]
    full = rows[f"structured 50% MACs, {label} + distillation + int8"]
    targets = {
        "latency_drop_over_mac_drop_b64": lat_drop[64] / mac_drop,
        "latency_drop_over_mac_drop_b1": lat_drop[1] / mac_drop,
        "int8_weight_payload_over_fp32": int8["weight_bytes"] / ref["weight_bytes"],
        "int8_overhead_bytes": int8["overhead_bytes"],
        "fp32_overhead_bytes": ref["overhead_bytes"],
        "prune50_distill_int8_test_accuracy_loss_points": 100 * (ref["test_accuracy"] - full["test_accuracy"]),
    }
    checks = {
        "latency drop >= 0.8 x MAC drop (batch 64)": targets["latency_drop_over_mac_drop_b64"] >= 0.8,
        "int8 weight payload <= 0.3 x fp32": targets["int8_weight_payload_over_fp32"] <= 0.3,
        "50% MACs + distillation + int8 loses <= 1 point": targets["prune50_distill_int8_test_accuracy_loss_points"] <= 1.0,
    }
    result = {"package": package_state(), "rows": rows, "targets": targets, "checks": checks, "ratios": ratios, "pruned_macs": macs,
              "importance_chosen_on_val": {"chosen": best, "val_accuracy": val},
              "settings": vars(args), "seconds": round(time.time() - t0, 1),
              "steps": {name: art.report for name, art in artifacts.items()}}
    write_results(RESULTS, "compress_mnist1d", result, markdown(result))
    return result


def markdown(result: dict) -> str:
    cols = [("test_accuracy", "test acc", "{:.3f}"), ("val_accuracy", "val acc", "{:.3f}"),
            ("params", "params", "{:,}"), ("macs", "MACs", "{:,}"), ("bytes", "file B", "{:,}"),
            ("weight_bytes", "weights B", "{:,}"), ("overhead_bytes", "overhead B", "{:,}"),
            ("storage_bytes", "storage B", "{:,}"), ("latency_ms_b1", "ms b1", "{:.4f}"),
            ("latency_ms_b64", "ms b64", "{:.4f}")]
    lines = ["# Compression of the MNIST-1D paper CNN", "",
             "All accuracies and latencies are measured by running each ONNX file in ONNX Runtime "
             "(CPU, one thread; latency = median of the fastest of interleaved rounds). `storage B` is the "
             "clustered encoding where clustering ran, else the file.", "",
             "| variant | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(row[k]) for k, _, fmt in cols) + " |")
    t = result["targets"]
    lines += ["", "## Targets", "",
              f"- latency drop / MAC drop (structured 50% MACs + distillation): batch 64 "
              f"**{t['latency_drop_over_mac_drop_b64']:.2f}**, batch 1 {t['latency_drop_over_mac_drop_b1']:.2f} (target >= 0.8)",
              f"- int8 weight payload / fp32 weight payload: **{t['int8_weight_payload_over_fp32']:.3f}** (target <= 0.3); "
              f"format overhead {t['int8_overhead_bytes']} B int8, {t['fp32_overhead_bytes']} B fp32",
              f"- test accuracy lost by 50% MACs + distillation + int8: "
              f"**{t['prune50_distill_int8_test_accuracy_loss_points']:.1f} points** (target <= 1)", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in result["checks"].items()]
    chosen = result["importance_chosen_on_val"]
    lines += ["", f"Per-layer ratios for 50% MACs: {result['ratios']}. Criterion for the distilled rows: "
              f"{chosen['chosen']} (validation accuracy after pruning + fine-tuning: {chosen['val_accuracy']}). "
              f"Settings: {result['settings']}; run took {result['seconds']} s.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
