"""The model sections of ``benchmarks/workloads.py``: the procedural 32x32 image task and the
procedural text task (run them with ``python benchmarks/workloads.py --sections image,text``).

- ``image`` (``shapes32``, 3x32x32, 10 classes):
  (a) ``slimnas search`` over the ``resnet`` and ``mobilenet`` (inverted residual) families;
  (b) a hand-written ResNet-18 in its CIFAR layout (width-reduced with ``--width`` so it trains
  on a CPU), trained here, then ``compress --auto`` (:func:`slimnas.study.auto_compress`, fp32
  only, so latency reflects pruning) to 50% and 25% of its MACs: test accuracy lost, and the
  ONNX Runtime latency drop against the MAC drop at batch 1 and 32.
- ``text`` (``text``, token ids, 8 classes): a Transformer encoder (the ``transformer`` family)
  trained here, its heads and MLP neurons pruned to 50% of its MACs (ratios scaled to the
  target, fine-tuned with distillation), then int8 (``int8-auto``: static and dynamic written,
  the faster one within 1 point of validation accuracy kept): accuracy lost, latency drop, bytes.

Every accuracy comes from running the ONNX file in ONNX Runtime; latencies are medians of
interleaved rounds (one thread). Each section returns ``{"title", "checks", "markdown", ...}``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import torch
import yaml

import slimnas
from slimnas.compress import (
    CompressedModel,
    CompressionPolicy,
    OnnxQuantizer,
    Retrain,
    StructuredPruner,
    fill_to_macs,
    list_prunable_layers,
    measure_artifact,
    quantize_model,
    scale_to_macs,
)
from slimnas.data import DataSplits, load_dataset
from slimnas.measure import count_macs, count_params, interleaved_latency
from slimnas.models import TransformerSpec, build_model, cifar_resnet18
from slimnas.spaces import TrainSpec
from slimnas.study import auto_compress
from slimnas.training import evaluate, fit

BATCHES = (1, 32)


def log(msg: str, t0: float) -> None:
    """A progress line: wall seconds and this process's CPU seconds (the CPU figure is what a
    quiet machine would take, roughly, when the wall clock is stretched by other jobs)."""
    print(f"[{time.time() - t0:6.0f}s wall, {time.process_time():6.0f}s cpu] {msg}", file=sys.stderr, flush=True)


def head(data: DataSplits, n_train: int, n_eval: int) -> DataSplits:
    """The first samples of each split (``--quick``: a smoke run on a slice of the data)."""
    return dataclasses.replace(data, x_train=data.x_train[:n_train], y_train=data.y_train[:n_train],
                               x_val=data.x_val[:n_eval], y_val=data.y_val[:n_eval],
                               x_test=data.x_test[:n_eval], y_test=data.y_test[:n_eval])


def drops(rows: dict, ref: str, name: str) -> dict:
    """Accuracy lost (points), MAC drop and latency drop per batch of ``name`` against ``ref``."""
    a, b = rows[ref], rows[name]
    out = {"test_accuracy_lost_points": 100 * (a["test_accuracy"] - b["test_accuracy"]),
           "mac_drop": 1 - b["macs"] / a["macs"], "params_drop": 1 - b["params"] / a["params"],
           "bytes_ratio": b["bytes"] / a["bytes"]}
    for batch in BATCHES:
        out[f"latency_drop_b{batch}"] = 1 - b[f"latency_ms_b{batch}"] / a[f"latency_ms_b{batch}"]
        out[f"latency_drop_over_mac_drop_b{batch}"] = (out[f"latency_drop_b{batch}"] / out["mac_drop"]
                                                       if out["mac_drop"] > 0 else None)
    return out


# --- image ---------------------------------------------------------------------------------


def image_section(args, work: Path) -> dict:
    t0 = args.t0
    out_dir = Path(args.runs) if args.runs else work
    data = load_dataset("shapes32")
    if args.quick:
        data = head(data, 1024, 320)
    shape = data.input_shape
    q = args.quick

    # (a) a search over the residual and inverted-residual families
    cfg = {"data": {"dataset": "shapes32"}, "objectives": ["accuracy", "macs"], "seed": args.seed,
           "space": {"family": ["resnet", "mobilenet"],
                     "resnet": {"n_stages": {"low": 2, "high": 3}, "blocks": [1], "width": [8, 16], "stride": [2],
                                "stem": [8]},
                     "mobilenet": {"n_blocks": {"low": 2, "high": 3}, "width": [8, 16], "expand": [2, 4],
                                   "kernel": [3], "stride": [2], "se": [False, True], "stem": [8]}},
           "training": {"epochs": 1 if q else args.search_epochs, "lr": 3e-3, "batch_size": 64, "optimizer": "adamw"}}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "image_search.yaml").write_text(yaml.safe_dump(cfg))
    search = slimnas.search(out_dir / "image_search.yaml", n_trials=2 if q else args.search_trials,
                            out=str(out_dir / "image_search"))
    front = [{"trial": m.trial, "family": m.candidate["arch"]["family"], "arch": m.candidate["arch"],
              **{k: m.metrics.get(k) for k in ("test_accuracy", "val_accuracy", "macs", "params", "latency_ms")}}
             for m in search.front]
    log(f"image search: {len(search.study.trials)} trials, front of {len(front)}", t0)

    # (b) ResNet-18 (CIFAR layout) trained here, then compress --auto to 50% and 25% of its MACs
    torch.manual_seed(args.seed)
    width = 4 if q else args.width
    net = cifar_resnet18(data.n_classes, width=width, in_channels=shape[0])
    fit(net, data.x_train, data.y_train, TrainSpec(lr=3e-3, epochs=1 if q else args.epochs, batch_size=64,
                                                   optimizer="adamw"),
        x_val=data.x_val, y_val=data.y_val, seed=args.seed)
    net.eval()
    log(f"ResNet-18 (width {width}) trained: val {evaluate(net, data.x_val, data.y_val)['accuracy']:.3f}", t0)
    files = {"ResNet-18 fp32": quantize_model(net, shape, mode="fp32")}
    rows = {"ResNet-18 fp32": measure_artifact(CompressedModel(net, files["ResNet-18 fp32"], shape, CompressionPolicy()),
                                               data, latency_batches=(), repeats=1)}
    # the hardware-aware runs target batch 32 on this machine (a profile without a table: measured here)
    profile = out_dir / "batch32.yaml"
    profile.write_text(yaml.safe_dump({"name": "this-cpu-b32", "runtime": "onnxruntime", "threads": 1, "batch": [32],
                                       "precisions": ["fp32", "int8"]}))
    auto_settings, hardware = {}, {}
    for keep, aware in ((50, False), (25, False), (50, True), (25, True)):
        name = f"auto, macs<={keep}%" + (", hardware-aware b32" if aware else "")
        settings = dict(n_trials=3 if q else args.auto_trials, finetune_epochs=1 if q else args.finetune_epochs,
                        final_epochs=1 if q else args.final_epochs, precisions=("fp32",), seed=args.seed,
                        refine_epochs=0 if q else args.refine_epochs,
                        train=TrainSpec(lr=1e-3, batch_size=64, optimizer="adamw", epochs=1),
                        early_stopping="median",  # as measured (--auto's default until it became "none")
                        # the plain row opts out of --auto's default runtime-friendly rounding
                        **({"device_profile": str(profile)} if aware else {"hardware_aware": False}))
        auto_settings[name] = settings
        res = auto_compress(net, data, budget=[f"macs<={keep}%"], out=out_dir / f"resnet18_auto{keep}{'_hw' if aware else ''}",
                            **settings)
        files[name] = res.artifact.onnx
        rows[name] = {k: v for k, v in res.after.items() if not k.startswith("latency")}
        rows[name]["feasible"] = res.feasible
        if aware:
            rounding, precision = res.hardware["mac_rounding"], res.hardware["precision"]
            hardware[name] = {"rounding": rounding["rounding"], "reason": rounding["reason"],
                              "measured": rounding["measured"], "precision": precision["reason"]}
        log(f"{name}: test {res.after['test_accuracy']:.3f}, MACs {res.after['macs']:,}", t0)
    lat = interleaved_latency(files, shape, batches=BATCHES, warmup=5, rounds=3 if q else args.rounds, repeats=10 if q else 30)
    for name, row in rows.items():
        row.update({f"latency_ms_b{b}": lat[name][b] for b in BATCHES})
    ref = "ResNet-18 fp32"
    compared = {name: drops(rows, ref, name) for name in rows if name != ref}
    checks = {}
    for name, c in compared.items():
        checks[f"{name}: meets its MAC budget"] = {"value": rows[name]["macs"], "met": bool(rows[name]["feasible"])}
        ratio = c["latency_drop_over_mac_drop_b32"]
        checks[f"{name}: latency drop >= 0.5 x MAC drop at batch 32"] = {"value": ratio,
                                                                          "met": ratio is not None and ratio >= 0.5}
    n_trials = len(search.study.trials)
    md = ["### Search over resnet and mobilenet", "",
          f"{n_trials} trials ({cfg['training']['epochs']} epochs each); front:", "",
          "| trial | family | test acc | MACs | params |", "|---|---|---|---|---|"]
    md += [f"| {m['trial']} | {m['family']} | {m['test_accuracy']:.3f} | {m['macs']:,} | {m['params']:,} |"
           for m in front]
    md += ["", f"### ResNet-18 (CIFAR layout, width {width}), `compress --auto` to 50% and 25% of its MACs", "",
           *rows_table(rows), "", *compared_table(compared), "",
           "Hardware-aware runs (`--device-profile` with batch 32, one thread, no table: latency measured here): "
           "the channel rounding chosen under the MAC budget, and the precision chosen per layer:", "",
           *[f"- {name}: rounding {h['rounding']} ({h['reason']}); precision: {h['precision']}"
             for name, h in hardware.items()]]
    return {"title": "32x32 images: the procedural shapes32 task",
            "search": {"front": front, "n_trials": n_trials, "config": cfg},
            "resnet18": {"width": width, "params": count_params(net), "macs": count_macs(net, shape),
                         "rows": rows, "compared": compared, "auto_settings": auto_settings,
                         "hardware": hardware},
            "checks": checks, "markdown": md}


# --- text ----------------------------------------------------------------------------------


def text_transformer(data: DataSplits, *, quick: bool = False) -> tuple[TransformerSpec, TrainSpec]:
    """The text section's Transformer encoder and its training recipe (20 epochs; also
    ``benchmarks/low_bit.py``'s text model)."""
    spec = TransformerSpec(depth=2, heads=4, dim=32 if quick else 64, mlp_ratio=4.0, vocab_size=data.vocab_size)
    return spec, TrainSpec(lr=3e-3, epochs=20, batch_size=64, optimizer="adamw")


def text_section(args, work: Path) -> dict:
    t0 = args.t0
    data = load_dataset("text")
    if args.quick:
        data = head(data, 1024, 320)
    shape = data.input_shape
    q = args.quick
    torch.manual_seed(args.seed)
    epochs = 1 if q else args.text_epochs
    spec, recipe = text_transformer(data, quick=q)
    net = build_model(spec, shape, data.n_classes)
    fit(net, data.x_train, data.y_train, dataclasses.replace(recipe, epochs=epochs), x_val=data.x_val, y_val=data.y_val,
        seed=args.seed)
    net.eval()
    log(f"Transformer trained: val {evaluate(net, data.x_val, data.y_val)['accuracy']:.3f}", t0)
    base_macs = count_macs(net, shape)
    uniform = {layer.name: 0.5 for layer in list_prunable_layers(net, shape)}  # heads (query) and MLP (fc1)
    ratios, macs = scale_to_macs(net, uniform, shape, base_macs // 2)
    # heads come in quarter steps: scaling alone can overshoot (a 3rd head of 4 removed); give back
    # heads and neurons while the model stays within half of the MACs
    ratios = fill_to_macs(net, ratios, shape, base_macs // 2)
    retrain = Retrain(epochs=1 if q else args.text_finetune, train=TrainSpec(lr=1e-3, batch_size=64, optimizer="adamw",
                                                                            epochs=1),
                      distill=True, seed=args.seed, patience=None if q else 4)
    pruner = StructuredPruner(ratio=0.0, layer_ratios=ratios, retrain=retrain).fit(net, data)
    pruned = pruner.model_
    log(f"pruned to {count_macs(pruned, shape):,} of {base_macs:,} MACs ({pruner.report_['heads']} heads)", t0)
    quant = OnnxQuantizer(mode="int8-auto").fit(pruned, data)
    quant_full = OnnxQuantizer(mode="int8-auto").fit(net, data)
    files = {"Transformer fp32": quantize_model(net, shape, mode="fp32"),
             "heads+MLP 50% MACs fp32": quantize_model(pruned, shape, mode="fp32"),
             "heads+MLP 50% MACs + int8": quant.onnx_,
             "unpruned + int8": quant_full.onnx_}
    models = {"Transformer fp32": net, "heads+MLP 50% MACs fp32": pruned, "heads+MLP 50% MACs + int8": pruned,
              "unpruned + int8": net}
    rows = {name: measure_artifact(CompressedModel(models[name], blob, shape, CompressionPolicy()), data,
                                   latency_batches=(), repeats=1) for name, blob in files.items()}
    lat = interleaved_latency(files, shape, batches=BATCHES, warmup=5, rounds=3 if q else args.rounds, repeats=20 if q else 100)
    for name, row in rows.items():
        row.update({f"latency_ms_b{b}": lat[name][b] for b in BATCHES})
    ref = "Transformer fp32"
    compared = {name: drops(rows, ref, name) for name in rows if name != ref}
    full = compared["heads+MLP 50% MACs + int8"]
    pruned_macs = rows["heads+MLP 50% MACs fp32"]["macs"]
    checks = {"heads+MLP pruning reaches <= 50% of the MACs": {"value": pruned_macs / base_macs,
                                                               "met": pruned_macs <= base_macs / 2},
              "50% MACs + int8 loses <= 2 points of test accuracy": {"value": full["test_accuracy_lost_points"],
                                                                     "met": full["test_accuracy_lost_points"] <= 2.0},
              "50% MACs + int8 is faster at batch 32": {"value": full["latency_drop_b32"],
                                                       "met": full["latency_drop_b32"] > 0}}
    spec_d = {"depth": spec.depth, "heads": spec.heads, "dim": spec.dim, "mlp_ratio": spec.mlp_ratio,
              "vocab_size": spec.vocab_size}
    md = [f"Encoder {spec_d}, trained {epochs} epochs; heads left per layer "
          f"{pruner.report_['heads']}; int8 kept: {quant.report_['chosen']} (pruned), {quant_full.report_['chosen']} "
          "(unpruned).", "", *rows_table(rows), "", *compared_table(compared)]
    return {"title": "Text: a Transformer encoder, heads and MLP neurons pruned to 50% of its MACs, then int8",
            "markdown": md, "spec": spec_d, "ratios": ratios, "heads_after": pruner.report_["heads"], "layers": pruner.report_["layers"],
            "int8_chosen": {"pruned": quant.report_["chosen"], "unpruned": quant_full.report_["chosen"],
                            "candidates_pruned": quant.report_["candidates"]},
            "rows": rows, "compared": compared, "checks": checks}


# --- tables and arguments ------------------------------------------------------------------


def rows_table(rows: dict) -> list[str]:
    cols = [("test_accuracy", "test acc", "{:.3f}"), ("params", "params", "{:,}"), ("macs", "MACs", "{:,}"),
            ("bytes", "file B", "{:,}"), ("latency_ms_b1", "ms b1", "{:.3f}"), ("latency_ms_b32", "ms b32", "{:.3f}")]
    lines = ["| model | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt.format(row[k]) for k, _, fmt in cols) + " |")
    return lines


def compared_table(comp: dict) -> list[str]:
    lines = ["| vs the original | accuracy lost (points) | MAC drop | latency drop b1 | latency drop b32 | "
             "latency/MAC drop b1 | latency/MAC drop b32 | file bytes ratio |", "|---" * 8 + "|"]
    for name, c in comp.items():
        r1, r32 = c["latency_drop_over_mac_drop_b1"], c["latency_drop_over_mac_drop_b32"]
        lines.append(f"| {name} | {c['test_accuracy_lost_points']:.1f} | {c['mac_drop']:.2f} | "
                     f"{c['latency_drop_b1']:.2f} | {c['latency_drop_b32']:.2f} | "
                     f"{'-' if r1 is None else f'{r1:.2f}'} | {'-' if r32 is None else f'{r32:.2f}'} | "
                     f"{c['bytes_ratio']:.2f} |")
    return lines


def add_arguments(ap) -> None:
    """The image and text sections' options, on ``benchmarks/workloads.py``'s parser."""
    ap.add_argument("--runs", default=None, help="keep the image search and --auto run folders here "
                    "(default: a temporary folder)")
    ap.add_argument("--width", type=int, default=8, help="ResNet-18 base width (64 is the paper's)")
    ap.add_argument("--epochs", type=int, default=30, help="ResNet-18 training epochs (AdamW, cosine)")
    ap.add_argument("--search-trials", type=int, default=6, help="image search trials")
    ap.add_argument("--search-epochs", type=int, default=10, help="image search: epochs per trial")
    ap.add_argument("--auto-trials", type=int, default=6)
    ap.add_argument("--finetune-epochs", type=int, default=1, help="--auto: the ranking fine-tune")
    ap.add_argument("--refine-epochs", type=int, default=1, help="--auto: each criterion x learning-rate fine-tune")
    ap.add_argument("--final-epochs", type=int, default=8, help="--auto: the chosen policy's fine-tune")
    ap.add_argument("--text-epochs", type=int, default=20)
    ap.add_argument("--text-finetune", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=7, help="latency rounds (the fastest round's median kept)")
