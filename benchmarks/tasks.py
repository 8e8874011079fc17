"""Tasks beyond classification through ``slimnas search``, one section each, against classical
baselines on the same splits (``benchmarks/_tasks_baselines.py``).

- ``regression``: ``diabetes`` (scikit-learn's, 442 patients), 5 train/validation/test splits
  (``data.seed`` 0-4), searched with ``benchmarks/configs/tasks_diabetes.yaml`` (small MLPs,
  dropout, weight decay, the epoch count searched). Target: the kept model's test R^2 within 0.02
  of Ridge's (alpha chosen on validation, refit on train + validation), or above, per split and in
  the mean over the splits.
- ``multilabel``: ``digits-multilabel``, searched with ``benchmarks/configs/tasks_multilabel.yaml``.
  Target: test mean average precision within 1 point of one-vs-rest logistic regression, or above.

In each split the front member with the best validation figure of the task's primary metric
(then the lowest validation loss) is kept; the test split chooses nothing and is read once, for
that member. Its test figure is recomputed here from its ``model.onnx`` in ONNX Runtime (it must
equal the search's own ``test_<metric>``), so a paired bootstrap over the test rows (the same
resampled rows for slimnas and the baseline) can say how large the gap's sampling error is.

Every section returns its figures, its targets (``{"met": bool, ...}``) and its Markdown, and is
one function of :data:`SECTIONS` (add another there). The script writes ``tasks.{json,md}`` (a
run of some sections only: ``tasks_<sections>``; ``--quick``: ``_quick``) under ``--out``
(default ``benchmarks/results``).

Usage: ``python benchmarks/tasks.py [--sections regression,multilabel] [--quick] [--out DIR]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _tasks_baselines
import numpy as np
import torch
import yaml
from _common import (  # benchmarks/ is on sys.path when run as a script
    package_state,
    run_sections,
    slimnas_search,
)

from slimnas.data import load_dataset
from slimnas.export._session import predict

RESULTS = Path(__file__).parent / "results"
CONFIGS = Path(__file__).parent / "configs"


def best_on_validation(pareto: dict, metric: str, maximize: bool) -> dict:
    """The front member a user keeps for the task's metric: its best validation figure, then the
    lowest validation loss (test data chooses nothing)."""
    sign = 1.0 if maximize else -1.0
    return max(pareto["front"], key=lambda m: (sign * m["metrics"][f"val_{metric}"], -m["metrics"].get("val_loss", 0.0)))


def paired_bootstrap(score: Callable[[np.ndarray, np.ndarray], float], ours: np.ndarray, theirs: np.ndarray,
                     y: np.ndarray, n: int = 1000, seed: int = 0) -> np.ndarray:
    """``score(y, ours) - score(y, theirs)`` (scikit-learn's order: truth first) on ``n``
    resamples (with replacement) of the test rows, the same rows for both sides: the sampling
    spread of the gap a test split of this size gives."""
    rng = np.random.default_rng(seed)
    out = np.empty(n)
    for b in range(n):
        idx = rng.integers(0, len(y), len(y))
        out[b] = score(y[idx], ours[idx]) - score(y[idx], theirs[idx])
    return out


def interval(draws: np.ndarray) -> dict:
    """The bootstrap's standard error and central 95% interval."""
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"se": round(float(draws.std(ddof=1)), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}


def searched(config: dict, split: int, out: Path, n_trials: int, seed: int, metric: str, maximize: bool) -> dict:
    """The search on ``data.seed = split``: the kept member, its test outputs (ONNX Runtime, what
    the model computes: regression's standardised values, multi-label's logits) and the splits."""
    config = {**config, "data": {**config["data"], "seed": split}}
    t0 = time.time()
    pareto = slimnas_search(config, out, n_trials, seed)
    best = best_on_validation(pareto, metric, maximize)
    splits = load_dataset(config["data"]["dataset"], seed=split)  # the splits and scaling the search used
    outputs = predict(Path(best["path"]) / "model.onnx", splits.x_test)
    return {"pareto": pareto, "best": best, "splits": splits, "outputs": outputs, "seconds": round(time.time() - t0, 1)}


def member(best: dict, metric: str, seconds: float, front_size: int) -> dict:
    m = best["metrics"]
    return {"trial": best["trial"], "arch": best["arch"], "train": best["train"], f"val_{metric}": round(m[f"val_{metric}"], 4),
            f"test_{metric}": round(m[f"test_{metric}"], 4), "macs": m["macs"], "params": m["params"],
            "front_size": front_size, "seconds": seconds}


def scorer(task, metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``score(targets, outputs)``: the task's ``metric`` (targets encoded, outputs as the model
    computes them), in scikit-learn's argument order."""
    return lambda target, out: task.score(torch.as_tensor(out, dtype=torch.float32), torch.as_tensor(target))[metric]


def same_figure(search: float, here: float, what: str) -> None:
    """The kept member's test figure recomputed here from its ONNX file is the search's own (the
    bootstrap resamples the outputs that gave it)."""
    if abs(search - here) > 2e-3:
        raise RuntimeError(f"{what}: the search recorded {search}, its model.onnx gives {here} on the same split")


def load_config(name: str, quick: bool) -> dict:
    config = yaml.safe_load((CONFIGS / name).read_text())
    if quick:
        config["training"] = {**config["training"], "epochs": 3}
        config["strategy"] = {**config.get("strategy", {}), "n_startup_trials": 2}
    return config


# ---------------------------------------------------------------------------------------------
# regression


def regression(args: argparse.Namespace, work: Path) -> dict:
    """Diabetes through ``slimnas search`` against Ridge, per split and in the mean."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = load_config("tasks_diabetes.yaml", args.quick)
    n_trials = 3 if args.quick else args.regression_trials
    n_splits = 1 if args.quick else args.regression_splits
    rows, gaps = [], []
    for split in range(n_splits):
        run = searched(config, split, work / f"diabetes-{split}", n_trials, args.seed, "r2", True)
        task, s = run["splits"].task, run["splits"]
        y = task.decode(s.y_test).numpy()[:, 0]
        ours = task.decode(torch.as_tensor(run["outputs"])).numpy()[:, 0]
        alpha, ridge, raw = _tasks_baselines.ridge_model(split)
        theirs = ridge.predict(raw["test"][0])
        # context: Ridge on the training rows alone, the rows slimnas's candidates train on
        ridge_train = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(*raw["train"])
        ridge_val = float(r2_score(raw["val"][1], ridge_train.predict(raw["val"][0])))
        draws = paired_bootstrap(r2_score, ours, theirs, y, n=args.bootstrap, seed=split)
        gaps.append(draws)
        row = {"data_seed": split, "sizes": {k: int(len(raw[k][1])) for k in ("train", "val", "test")},
               "slimnas": member(run["best"], "r2", run["seconds"], len(run["pareto"]["front"])),
               "slimnas_test_r2_onnx": round(float(r2_score(y, ours)), 4),
               "ridge": {"alpha": alpha, "test_r2": round(float(r2_score(y, theirs)), 4),
                         "val_r2_train_fit": round(ridge_val, 4),
                         "test_r2_train_fit": round(float(r2_score(y, ridge_train.predict(raw["test"][0]))), 4)}}
        same_figure(row["slimnas"]["test_r2"], row["slimnas_test_r2_onnx"], "test R²")
        row["gap"] = round(row["slimnas"]["test_r2"] - row["ridge"]["test_r2"], 4)
        row["gap_bootstrap"] = interval(draws)
        rows.append(row)
        print(f"regression split {split}: test R2 {row['slimnas']['test_r2']:.3f} vs Ridge {row['ridge']['test_r2']:.3f} "
              f"(val {row['slimnas']['val_r2']:.3f} vs {ridge_val:.3f}) {run['seconds']} s", file=sys.stderr)
    mean = {"slimnas": round(float(np.mean([r["slimnas"]["test_r2"] for r in rows])), 4),
            "ridge": round(float(np.mean([r["ridge"]["test_r2"] for r in rows])), 4),
            "slimnas_val": round(float(np.mean([r["slimnas"]["val_r2"] for r in rows])), 4),
            "ridge_val_train_fit": round(float(np.mean([r["ridge"]["val_r2_train_fit"] for r in rows])), 4),
            "ridge_train_fit": round(float(np.mean([r["ridge"]["test_r2_train_fit"] for r in rows])), 4)}
    mean["gap"] = round(mean["slimnas"] - mean["ridge"], 4)
    mean["gap_bootstrap"] = interval(np.mean(gaps, axis=0))  # independent resamples per split, averaged
    within = sum(r["gap"] >= -0.02 for r in rows)
    checks = {f"slimnas search's test R² within 0.02 of Ridge's or above, mean over {n_splits} split(s)":
              {"value": mean["gap"], "met": mean["gap"] >= -0.02},
              f"the same in each split ({within}/{n_splits})": {"value": within, "met": within == n_splits}}
    return {"title": "Regression: diabetes, slimnas search against Ridge",
            "settings": {"n_trials": n_trials, "n_splits": n_splits, "config": "benchmarks/configs/tasks_diabetes.yaml",
                         "search": {k: config[k] for k in ("objectives", "strategy", "space", "training")},
                         "seed": args.seed, "bootstrap": args.bootstrap},
            "rows": rows, "mean": mean, "checks": checks, "markdown": regression_markdown(rows, mean, n_trials)}


def regression_markdown(rows: list[dict], mean: dict, n_trials: int) -> list[str]:
    b = mean["gap_bootstrap"]
    lines = [
        f"`slimnas search --dataset diabetes` with `benchmarks/configs/tasks_diabetes.yaml` ({n_trials} TPE trials, "
        "objectives R² and MACs, MLPs of 1-2 layers of 4-32 units, dropout, weight decay, 10-100 epochs), one search "
        "per split (`data.seed`); the front member with the best validation R² is tested once. Ridge: alpha chosen "
        "on the validation split, refit on train + validation (`benchmarks/_tasks_baselines.py`); \"Ridge, train "
        "only\": the same alpha fitted on the training rows alone, the rows slimnas's models train on. Gap: slimnas "
        "minus Ridge; its 95% interval is a paired bootstrap over the test rows.", "",
        "| split | rows train/val/test | slimnas val R² | Ridge val R² (train fit) | slimnas test R² | Ridge test R² "
        "| gap (95% bootstrap) | Ridge test R², train only | model kept |",
        "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a, t, z = r["slimnas"]["arch"], r["slimnas"]["train"], r["sizes"]
        g = r["gap_bootstrap"]["ci95"]
        model = (f"mlp {'-'.join(map(str, a['widths']))} {a['activation']}, dropout {a['dropout']}, wd {t['weight_decay']}, "
                 f"{t['epochs']} epochs ({r['slimnas']['macs']} MACs)")
        lines.append(f"| {r['data_seed']} | {z['train']}/{z['val']}/{z['test']} | {r['slimnas']['val_r2']:.3f} | "
                     f"{r['ridge']['val_r2_train_fit']:.3f} | {r['slimnas']['test_r2']:.3f} | {r['ridge']['test_r2']:.3f} | "
                     f"{r['gap']:+.3f} ({g[0]:+.3f} to {g[1]:+.3f}) | {r['ridge']['test_r2_train_fit']:.3f} | {model} |")
    lines += [f"| mean | | {mean['slimnas_val']:.3f} | {mean['ridge_val_train_fit']:.3f} | {mean['slimnas']:.3f} | "
              f"{mean['ridge']:.3f} | {mean['gap']:+.3f} ({b['ci95'][0]:+.3f} to {b['ci95'][1]:+.3f}) | "
              f"{mean['ridge_train_fit']:.3f} | |"]
    return lines


# ---------------------------------------------------------------------------------------------
# multilabel


def multilabel(args: argparse.Namespace, work: Path) -> dict:
    """Digits-multilabel through ``slimnas search`` against one-vs-rest logistic regression."""
    config = load_config("tasks_multilabel.yaml", args.quick)
    n_trials = 3 if args.quick else args.multilabel_trials
    n_splits = 1 if args.quick else args.multilabel_splits
    rows, gaps = [], []
    for split in range(n_splits):
        run = searched(config, split, work / f"digits-multilabel-{split}", n_trials, args.seed, "mean_ap", True)
        task, s = run["splits"].task, run["splits"]
        y = s.y_test.numpy()
        c, ovr, raw = _tasks_baselines.ovr_model(split)
        theirs = ovr.decision_function(raw["test"][0].reshape(len(raw["test"][0]), -1))

        score = scorer(task, "mean_ap")
        draws = paired_bootstrap(score, run["outputs"], theirs, y, n=args.bootstrap, seed=split)
        gaps.append(draws)
        row = {"data_seed": split, "sizes": {k: int(len(raw[k][1])) for k in ("train", "val", "test")},
               "slimnas": member(run["best"], "mean_ap", run["seconds"], len(run["pareto"]["front"])),
               "slimnas_test_mean_ap_onnx": round(score(y, run["outputs"]), 4),
               "ovr_logistic": {"C": c, "test_mean_ap": round(score(y, theirs), 4)}}
        same_figure(row["slimnas"]["test_mean_ap"], row["slimnas_test_mean_ap_onnx"], "test mAP")
        row["gap_points"] = round(100 * (row["slimnas"]["test_mean_ap"] - row["ovr_logistic"]["test_mean_ap"]), 2)
        row["gap_bootstrap_points"] = interval(100 * draws)
        rows.append(row)
        print(f"multilabel split {split}: test mAP {row['slimnas']['test_mean_ap']:.4f} vs one-vs-rest logistic "
              f"{row['ovr_logistic']['test_mean_ap']:.4f} {run['seconds']} s", file=sys.stderr)
    mean = {"slimnas": round(float(np.mean([r["slimnas"]["test_mean_ap"] for r in rows])), 4),
            "ovr_logistic": round(float(np.mean([r["ovr_logistic"]["test_mean_ap"] for r in rows])), 4)}
    mean["gap_points"] = round(100 * (mean["slimnas"] - mean["ovr_logistic"]), 2)
    mean["gap_bootstrap_points"] = interval(100 * np.mean(gaps, axis=0))
    within = sum(r["gap_points"] >= -1.0 for r in rows)
    checks = {f"slimnas search's test mean average precision within 1 point of one-vs-rest logistic regression or "
              f"above, mean over {n_splits} split(s)": {"points": mean["gap_points"], "met": mean["gap_points"] >= -1.0},
              f"the same in each split ({within}/{n_splits})": {"value": within, "met": within == n_splits}}
    return {"title": "Multi-label: digits-multilabel, slimnas search against one-vs-rest logistic regression",
            "settings": {"n_trials": n_trials, "n_splits": n_splits, "config": "benchmarks/configs/tasks_multilabel.yaml",
                         "search": {k: config[k] for k in ("objectives", "strategy", "space", "training")},
                         "seed": args.seed, "bootstrap": args.bootstrap},
            "rows": rows, "mean": mean, "checks": checks, "markdown": multilabel_markdown(rows, mean, n_trials)}


def multilabel_markdown(rows: list[dict], mean: dict, n_trials: int) -> list[str]:
    b = mean["gap_bootstrap_points"]["ci95"]
    lines = [
        f"`slimnas search --dataset digits-multilabel` with `benchmarks/configs/tasks_multilabel.yaml` ({n_trials} TPE "
        "trials, objectives mean average precision and MACs, MLPs of 1-2 layers), one search per split; the front "
        "member with the best validation mAP is tested once. One-vs-rest logistic regression on the pixels: C "
        "chosen on the validation split, refit on train + validation. Gap in points (slimnas minus logistic "
        "regression), 95% interval by a paired bootstrap over the test rows.", "",
        "| split | rows train/val/test | slimnas val mAP | slimnas test mAP | logistic regression test mAP "
        "| gap, points (95% bootstrap) | model kept |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        a, z, g = r["slimnas"]["arch"], r["sizes"], r["gap_bootstrap_points"]["ci95"]
        lines.append(f"| {r['data_seed']} | {z['train']}/{z['val']}/{z['test']} | {r['slimnas']['val_mean_ap']:.4f} | "
                     f"{r['slimnas']['test_mean_ap']:.4f} | {r['ovr_logistic']['test_mean_ap']:.4f} | "
                     f"{r['gap_points']:+.2f} ({g[0]:+.2f} to {g[1]:+.2f}) | mlp {'-'.join(map(str, a['widths']))}, "
                     f"{r['slimnas']['macs']:,} MACs |")
    lines.append(f"| mean | | | {mean['slimnas']:.4f} | {mean['ovr_logistic']:.4f} | {mean['gap_points']:+.2f} "
                 f"({b[0]:+.2f} to {b[1]:+.2f}) | |")
    return lines


# ---------------------------------------------------------------------------------------------
# detection

#: the detector a user brings, written as a user writes it (CenterNet, Zhou et al. 2019): the
#: repository's example, examples/detector.py (a class heatmap and each cell's distances to its box's
#: sides; in eval mode the heatmap's peaks, 3x3 max-pool, no NMS, and the top k as batched boxes,
#: scores and labels; given targets, its losses), copied into the run folder as the user's file
DETECTOR = (Path(__file__).resolve().parent.parent / "examples" / "detector.py").read_text()


#: the detection section's run: boxes64 images (60/20/20), the user's training epochs, --auto's trials
#: and fine-tune epochs per trial and at the end (``--quick``: 300 images, 3 epochs, 2 trials of 1 epoch);
#: sized to run in about 10 minutes on a loaded 2-core machine with OMP_NUM_THREADS=1
DETECTION = {"n": 1000, "epochs": 15, "trials": 4, "finetune": 2, "final": 8}


def train_detector(model, images: np.ndarray, targets: list[dict], epochs: int, seed: int) -> list[float]:
    """The user's own training loop: Adam, cosine decay, batches of 32, the detector's summed losses."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    steps = epochs * ((len(images) + 31) // 32)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x = torch.from_numpy(images)
    t = [{"boxes": torch.from_numpy(d["boxes"]), "labels": torch.from_numpy(d["labels"])} for d in targets]
    losses = []
    model.train()
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(x), generator=gen).split(32):
            if len(idx) < 2:
                continue
            loss = sum(model(x[idx], [t[i] for i in idx.tolist()]).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(round(total / len(x), 4))
        print(f"detection: epoch {epoch + 1}/{epochs} train loss {losses[-1]}", file=sys.stderr)
    model.eval()
    return losses


def detection(args: argparse.Namespace, work: Path) -> dict:
    """A user's detector on ``boxes64`` through ``compress --auto`` to half its MACs, and its int8 file."""
    import json
    import subprocess

    import slimnas
    from slimnas.data import load_task_dataset
    from slimnas.models._detector import BOX_IOU, BOX_SCORE, box_agreement
    from slimnas.tasks import get_task

    cfg = {"n": 300, "epochs": 3, "trials": 2, "finetune": 1, "final": 1} if args.quick else DETECTION
    n, epochs = cfg["n"], cfg["epochs"]
    (work / "detector.py").write_text(DETECTOR)
    (work / "data.yaml").write_text(yaml.safe_dump({"data": {"dataset": "boxes64", "options": {"n": n}}}))
    _, raw = load_task_dataset("boxes64", n=n)
    import importlib.util

    spec = importlib.util.spec_from_file_location("detector", work / "detector.py")  # the user's file
    detector = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(detector)
    t0 = time.time()
    model = detector.build()
    losses = train_detector(model, raw["train"][0], raw["train"][1], epochs, args.seed)
    torch.save(model.state_dict(), work / "detector.pt")
    train_seconds = round(time.time() - t0, 1)
    cmd = ["compress", "--model", f"{work / 'detector.py'}:build", "--weights", str(work / "detector.pt"),
           "--data-config", str(work / "data.yaml"), "--auto", "--budget", "macs<=50%",
           "--n-trials", str(cfg["trials"]), "--finetune-epochs", str(cfg["finetune"]),
           "--final-epochs", str(cfg["final"]), "--out", str(work / "auto"), "--quiet"]
    t1 = time.time()
    done = subprocess.run([sys.executable, "-m", "slimnas", *cmd], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"slimnas {' '.join(cmd)} failed: {done.stderr[-2000:]}")
    auto_seconds = round(time.time() - t1, 1)
    report = json.loads((work / "auto" / "report.json").read_text())
    before, after = report["before"], report["after"]
    int8 = work / "detector-int8.onnx"
    done = subprocess.run([sys.executable, "-m", "slimnas", "export", str(work / "auto"), "--format", "onnx-int8",
                           "--out", str(int8)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"slimnas export failed: {done.stderr[-2000:]}")
    # the int8 file in ONNX Runtime against the compressed model in eager mode, on the test images
    import onnxruntime as ort

    x_test = raw["test"][0]
    sess = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    boxes, scores, labels = sess.run(None, {sess.get_inputs()[0].name: x_test})
    got = np.concatenate([boxes, scores[..., None], labels[..., None].astype(np.float32)], -1)
    eager = slimnas.load(work / "auto")
    with torch.no_grad():
        expected = eager.eval()(torch.from_numpy(x_test)).numpy()
    task = get_task("detection")
    test_targets = task.encode(task.check_targets(raw["test"][1], input_shape=x_test.shape[1:]))
    int8_scores = task.score(torch.from_numpy(got), test_targets)
    eager_scores = task.score(torch.from_numpy(expected), test_targets)
    match = box_agreement(expected, got)
    match_all = box_agreement(expected, got, min_score=1e-6)
    n_boxes = int((expected[..., 4] >= BOX_SCORE).sum())
    drop = 100 * (before["test_map50"] - after["test_map50"])
    row = {"n_images": {k: len(raw[k][1]) for k in ("train", "val", "test")}, "train_epochs": epochs,
           "train_losses": losses, "train_seconds": train_seconds, "auto_seconds": auto_seconds,
           "command": "slimnas " + " ".join(c if not c.startswith(str(work)) else c.replace(str(work) + "/", "")
                                            for c in cmd),
           "before": {k: before[k] for k in ("test_map50", "test_map50_95", "val_map50", "macs", "params", "bytes")},
           "after": {k: after[k] for k in ("test_map50", "test_map50_95", "val_map50", "macs", "params", "bytes")},
           "macs_ratio": round(after["macs"] / before["macs"], 4), "test_map50_lost_points": round(drop, 2),
           "policy": report.get("policy"),
           "int8": {"outputs": names, "labels_dtype": str(labels.dtype), "test_map50": round(int8_scores["map50"], 4),
                    "test_map50_95": round(int8_scores["map50_95"], 4),
                    "eager_test_map50": round(eager_scores["map50"], 4), "bytes": int8.stat().st_size,
                    "eager_boxes": n_boxes, "min_score": BOX_SCORE, "iou": BOX_IOU,
                    "boxes_matched": round(match, 4), "every_row_matched": round(match_all, 4)}}
    checks = {"--auto reaches 50% of the detector's MACs": {"value": row["macs_ratio"], "met": row["macs_ratio"] <= 0.5},
              "test mAP@0.5 (ONNX files) lost at most 2 points": {"points": -drop, "met": drop <= 2.0},
              f"the int8 file's boxes match the eager model's (IoU >= {BOX_IOU}, same label) for 95% of them "
              f"(score >= {BOX_SCORE})": {"value": round(match, 4), "met": n_boxes > 0 and match >= 0.95}}  # none: not shown
    return {"title": "Detection: a user's CenterNet on boxes64 through compress --auto to 50% of its MACs",
            "settings": {**cfg, "seed": args.seed}, "rows": [row], "checks": checks,
            "markdown": detection_markdown(row)}


def detection_markdown(r: dict) -> list[str]:
    b, a, q = r["before"], r["after"], r["int8"]
    z = r["n_images"]
    return [
        f"A CenterNet-style detector written as a user writes one (`examples/detector.py`; class heatmap and box sides, "
        f"peaks by a 3x3 max-pool, top 20, no NMS; {b['params']:,} parameters), trained by the user's own loop for "
        f"{r['train_epochs']} epochs on `boxes64` ({z['train']}/{z['val']}/{z['test']} images), then "
        f"`{r['command']}`. mAP is COCO's (pycocotools) on the test split, of each ONNX file in ONNX Runtime.", "",
        "| model | MACs | params | test mAP@0.5 | test mAP@0.5:0.95 | val mAP@0.5 |", "|---|---|---|---|---|---|",
        f"| input | {b['macs']:,} | {b['params']:,} | {b['test_map50']:.4f} | {b['test_map50_95']:.4f} | "
        f"{b['val_map50']:.4f} |",
        f"| --auto (macs<=50%) | {a['macs']:,} ({r['macs_ratio']:.2f}x) | {a['params']:,} | {a['test_map50']:.4f} | "
        f"{a['test_map50_95']:.4f} | {a['val_map50']:.4f} |",
        f"| its `slimnas export --format onnx-int8` file | | | {q['test_map50']:.4f} | {q['test_map50_95']:.4f} | |",
        "", f"The int8 file (outputs {', '.join(q['outputs'])}; labels {q['labels_dtype']}; {q['bytes']:,} bytes) "
        f"against the same compressed model in eager mode on the {z['test']} test images: "
        f"{100 * q['boxes_matched']:.1f}% of the eager model's {q['eager_boxes']} boxes scoring {q['min_score']} or "
        f"more are found in the int8 file's answer with the same label and IoU >= {q['iou']} (every one of the 20 "
        f"rows per image, the lowest scores included: {100 * q['every_row_matched']:.1f}%). Lost test mAP@0.5: "
        f"{r['test_map50_lost_points']:+.2f} points. Training took {r['train_seconds']} s, --auto {r['auto_seconds']} s.",
    ]


# lm


def ngram_perplexity(data, order: int, split: str = "test", k: float = 0.1) -> float:
    """Perplexity on ``split`` of a character ``order``-gram model (1: unigram, 2: bigram) counted
    on the training windows, add-``k`` smoothed: the scale the decoder's figure is read on."""
    v = data.task.vocab_size
    x_tr, y_tr = (t.numpy().reshape(len(t), -1).astype(np.int64) for t in (data.x_train, data.y_train))
    x, y = (t.numpy().reshape(len(t), -1).astype(np.int64) for t in (getattr(data, f"x_{split}"), getattr(data, f"y_{split}")))
    if order == 1:
        p = np.bincount(y_tr.ravel(), minlength=v) + k
        return float(np.exp(-np.log(p[y] / p.sum()).mean()))
    counts = np.full((v, v), k)
    np.add.at(counts, (x_tr.ravel(), y_tr.ravel()), 1)
    return float(np.exp(-np.log((counts / counts.sum(1, keepdims=True))[x, y]).mean()))


LM_KEEP = ("val_perplexity", "test_perplexity", "macs", "params", "bytes")


def uniform_at_macs(model, shape, target: int, steps: int = 14) -> dict:
    """Uniform pruning at ``target`` MACs, never fewer (the package's rule, --auto's whole-head
    uniform warm start on the other side of the budget): one ratio ``q`` for the MLP neurons
    (and any other channel layer) of every block, and for each attention the whole head count
    nearest to ``q`` of its heads; ``q`` the largest that leaves at least ``target`` MACs.
    Returns the per-layer ratios (pruning's names), ``q``, the heads removed per attention and the MACs."""
    from slimnas.compress._allocate import uniform_at_macs as uniform

    best = uniform(model, shape, target, at_least=True, steps=steps)
    if best is None:
        raise ValueError(f"uniform pruning cannot keep {target:,} MACs")
    return best


def test_window_files(data, n: int, seq_len: int) -> np.ndarray:
    """Each ``pysource`` test window's source file (a CRC-32 of the file's text), the windows cut
    as the dataset cuts them (checked against ``data``'s): a test split of 800 windows is some
    16-20 files, and windows of one file rise and fall together."""
    import zlib

    from slimnas.data._pysource import MIN_FILES, encode_text, file_windows

    def tagged(text: str) -> np.ndarray:
        ids = encode_text(text)
        return np.stack([ids, np.full(len(ids), zlib.crc32(text.encode()))])

    w = file_windows(tagged, n, seq_len + 1, min_files=MIN_FILES)["test"]
    if not np.array_equal(w[:, 0, :-1], np.asarray(data.x_test).reshape(len(data.x_test), -1)):
        raise RuntimeError("the test windows cut here are not the dataset's: cannot group them by file")
    return w[:, 1, 0]


def window_nll(onnx, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each window's summed next-token cross-entropy (nats) from the ONNX file in ONNX Runtime."""
    logits = torch.from_numpy(predict(onnx, torch.as_tensor(x))).float()
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), torch.as_tensor(y), reduction="none").sum(1).double().numpy()


def file_bootstrap(nll: dict[str, np.ndarray], files: np.ndarray, tokens: int, n: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap over the test split's source files (the same resampled files for every
    model): the 95% interval of auto's test perplexity minus uniform's and of auto's percent above
    the unpruned decoder's, with the perplexities recomputed from ``nll`` (checked by the caller)."""
    ids, group = np.unique(files, return_inverse=True)
    sums = {k: np.bincount(group, weights=v, minlength=len(ids)) for k, v in nll.items()}
    count = np.bincount(group, minlength=len(ids)) * tokens
    rng = np.random.default_rng(seed)
    gap, above = np.empty(n), np.empty(n)
    for b in range(n):
        pick = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
        ppl = {k: float(np.exp((pick * v).sum() / (pick * count).sum())) for k, v in sums.items()}
        gap[b], above[b] = ppl["auto"] - ppl["uniform"], 100 * (ppl["auto"] / ppl["unpruned"] - 1)
    return {"files": len(ids), "resamples": n, "auto_minus_uniform": interval(gap), "auto_percent_above_unpruned":
            interval(above), "auto_below_uniform_share": round(float((gap < 0).mean()), 3),
            "auto_within_10_share": round(float((above <= 10).mean()), 3)}


def lm(args: argparse.Namespace, work: Path) -> dict:
    """A character-level decoder trained on ``pysource`` by ``slimnas search``, then ``--auto`` to
    half its MACs against uniform pruning to the same MACs with the same fine-tune."""
    from slimnas.compress import (
        CompressionPolicy,
        StructuredPruner,
        apply_policy,
        list_prunable_layers,
        measure_artifact,
        prune_ratios,
        quantize_model,
    )
    from slimnas.measure import count_macs
    from slimnas.study import auto_compress
    from slimnas.study._load import open_model

    torch.set_num_threads(1)
    config = load_config("tasks_lm.yaml", args.quick)
    if args.quick:
        config["data"] = {**config["data"], "options": {"n": 300, "seq_len": 32}}
        config["training"]["epochs"] = 2
    # --auto's own fine-tunes (2 epochs a trial, 10 for the chosen policy) in a full run
    n_trials, final_epochs, finetune_epochs = (3, 1, 1) if args.quick else (args.lm_trials, args.lm_final_epochs, 2)
    t0 = time.time()
    pareto = slimnas_search(config, work / "decoder", 1, args.seed)  # one candidate: the decoder to compress
    kept = best_on_validation(pareto, "perplexity", False)
    train_s = round(time.time() - t0, 1)
    # what `slimnas compress --run DIR --trial N --auto --budget "macs<=50%" --precision fp32` does
    loaded = open_model(work / "decoder", kept["trial"])
    model, data = loaded.model.eval(), loaded.load_data()
    shape = data.input_shape
    t1 = time.time()
    # --lm-refine-epochs (benchmark-only): the refinement's horizon; None: the package's own rule
    auto = auto_compress(model, data, budget=["macs<=50%"], precisions=("fp32",), n_trials=n_trials,
                         finetune_epochs=finetune_epochs, final_epochs=final_epochs, seed=args.seed,
                         refine_epochs=args.lm_refine_epochs, refine_top=args.lm_refine_top, latency_repeats=5,
                         out=work / "auto")
    auto_s = round(time.time() - t1, 1)
    # uniform: L1 importance and the final fine-tune auto's policy got (epochs, recipe,
    # distillation, best epoch by validation). At auto's MACs: one ratio for the MLP neurons, the
    # nearest whole head count for the heads (uniform_at_macs). Heads go whole, so one ratio for
    # every layer jumps over 50% of the MACs: the ratios just above and just below are extra rows
    prunable = [lay.name for lay in list_prunable_layers(model, shape)]
    target = int(0.5 * count_macs(model, shape))
    probes = [(r, count_macs(StructuredPruner(ratio=0.0, layer_ratios=dict.fromkeys(prunable, r))
                             .fit(model, input_shape=shape).model_, shape)) for r in np.arange(0.05, 0.96, 0.01).round(2)]
    same = uniform_at_macs(model, shape, int(auto.after["macs"]))
    brackets = {"uniform": (same["q"], same["ratios"]),
                **{key: (r, dict.fromkeys(prunable, float(r))) for key, (r, _) in {
                    "uniform_above": max((p for p in probes if p[1] >= target), key=lambda p: p[0]),  # at least 50%
                    "uniform_below": min((p for p in probes if p[1] <= target), key=lambda p: p[0])}.items()}}
    uniform, t2 = {}, time.time()
    files = {"unpruned": quantize_model(model, shape, mode="fp32"), "auto": auto.artifact.onnx}
    for key, (r, ratios) in brackets.items():
        policy = CompressionPolicy.of(prune={"ratio": 0.0, "importance": "l1", "layer_ratios": ratios}, distill=True)
        torch.manual_seed(args.seed)
        art = apply_policy(model, policy, data, teacher=model, epochs=final_epochs, train=auto.train, seed=args.seed,
                           keep_best=True)
        uniform[key] = {**measure_artifact(art, data, splits=("val", "test"), latency_batches=(1,), latency_repeats=5),
                        "ratio": float(r), **({"heads_removed": same["heads_removed"]} if key == "uniform" else {})}
        files[key] = art.onnx
    uniform_s = round(time.time() - t2, 1)
    # the test split's sampling error of the two targets: a paired bootstrap over its source files
    x_test, y_test = np.asarray(data.x_test), np.asarray(data.y_test)
    nll = {k: window_nll(files[k], x_test, y_test) for k in ("unpruned", "auto", "uniform")}
    for k, m in (("unpruned", auto.before), ("auto", auto.after), ("uniform", uniform["uniform"])):
        same_figure(m["test_perplexity"], float(np.exp(nll[k].sum() / y_test.size)), f"lm {k} test perplexity")
    opts = config["data"]["options"]
    spread = file_bootstrap(nll, test_window_files(data, opts["n"], opts["seq_len"]), y_test.shape[1],
                            n=args.bootstrap, seed=args.seed)

    def row(m: dict) -> dict:
        return {k: (round(m[k], 4) if isinstance(m[k], float) else m[k]) for k in LM_KEEP}

    before, after = row(auto.before), row(auto.after)
    uni, above, below = ({**row(uniform[k]), "ratio": uniform[k]["ratio"]} for k in ("uniform", "uniform_above",
                                                                                         "uniform_below"))
    uni["heads_removed"] = uniform["uniform"]["heads_removed"]
    scale = {"unigram": round(ngram_perplexity(data, 1), 3), "bigram": round(ngram_perplexity(data, 2), 3)}
    ratio_auto = after["test_perplexity"] / before["test_perplexity"]
    checks = {"auto at <= 50% MACs: test perplexity at most 10% above the unpruned decoder's (value: % above)":
              {"value": round(100 * (ratio_auto - 1), 2), "met": after["macs"] <= 0.5 * before["macs"] and ratio_auto <= 1.10},
              "auto's test perplexity below uniform pruning's with the same fine-tune, at as many MACs as "
              "auto's or more (uniform: one MLP ratio and the nearest whole head count, at auto's MACs)":
              {"value": round(after["test_perplexity"] - uni["test_perplexity"], 4),
               "met": after["test_perplexity"] < uni["test_perplexity"] and uni["macs"] >= after["macs"]}}
    a, t = kept["arch"], kept["train"]
    result = {"title": "Language modelling: pysource, a decoder compressed by --auto against uniform pruning",
              "settings": {"config": "benchmarks/configs/tasks_lm.yaml", "data": config["data"],
                           "training": config["training"], "auto": {"budget": "macs<=50%", "precisions": ["fp32"],
                           "n_trials": n_trials, "finetune_epochs": finetune_epochs, "final_epochs": final_epochs,
                           "refine_epochs": args.lm_refine_epochs, "refine_top": args.lm_refine_top},
                           "seed": args.seed},
              "decoder": {"trial": kept["trial"], "arch": a, "train": t, "sizes": {k: int(len(getattr(data, f"y_{k}")))
                                                                                   for k in ("train", "val", "test")}},
              "ngram_test_perplexity": scale, "unpruned": before,
              "auto": {**after, "ratios": prune_ratios(auto.policy), "importance": auto.policy.options("prune")["importance"],
                       "finetune_lr": auto.train.lr, "feasible": auto.feasible,
                       "refine": auto.refine},  # the refinement's fine-tunes: criterion, lr, epochs, val perplexity
              "uniform": {**uni, "importance": "l1", "finetune_lr": auto.train.lr},
              "uniform_above": {**above, "importance": "l1", "finetune_lr": auto.train.lr},
              "uniform_below": {**below, "importance": "l1", "finetune_lr": auto.train.lr},
              "test_bootstrap": spread,
              "seconds": {"train": train_s, "auto": auto_s, "uniform": uniform_s}, "checks": checks}
    print(f"lm: unpruned {before['test_perplexity']:.3f}, auto {after['test_perplexity']:.3f} ({after['macs']:,} MACs), "
          f"uniform {uni['test_perplexity']:.3f} ({uni['macs']:,} MACs), {above['test_perplexity']:.3f} "
          f"({above['macs']:,} MACs), {below['test_perplexity']:.3f} "
          f"({below['macs']:,} MACs); unigram {scale['unigram']}, bigram "
          f"{scale['bigram']}; {result['seconds']}", file=sys.stderr)
    result["markdown"] = lm_markdown(result)
    return result


def lm_markdown(r: dict) -> list[str]:
    s, d, a = r["settings"], r["decoder"], r["decoder"]["arch"]
    z = d["sizes"]
    lines = [
        f"A character-level decoder (`transformer` {a['depth']}x{a['dim']}, {a['heads']} heads, MLP ratio "
        f"{a['mlp_ratio']:g}, causal per-token head) trained by `slimnas search` with `{s['config']}` (one candidate, "
        f"{s['training']['epochs']} epochs) on `pysource` ({s['data']['options']['seq_len']}-character windows of the "
        f"Python standard library's source, split by file: {z['train']}/{z['val']}/{z['test']} windows train/val/test). "
        "Then, as `slimnas compress --run DIR --trial N --auto --budget \"macs<=50%\" --precision fp32` does, "
        f"`auto_compress` ({s['auto']['n_trials']} trials of per-layer ratios and criterion, "
        f"{s['auto']['final_epochs']}-epoch distilled final fine-tune). Uniform: L1 importance and the same final fine-tune "
        "(epochs, learning rate auto chose, distillation from the unpruned decoder, best epoch by validation "
        "perplexity). Heads are pruned whole, so one ratio for every layer cannot land on auto's MACs; the rule for "
        "uniform at auto's MACs: one ratio q for the MLP neurons of every block, and in every attention the whole "
        "head count nearest to q of its heads; q is the largest ratio that leaves at least auto's MACs (never fewer "
        "MACs than auto's; a step of q is one neuron per block, about 0.3% of the MACs). One ratio for every layer, "
        "heads included (the ratio with the fewest MACs at or above 50% and the one with the most at or below), "
        "gives the two extra rows; no perplexity is interpolated between them. Every perplexity is of the model's ONNX file in ONNX Runtime; test is read once per model.", "",
        "| model | val perplexity | test perplexity | MACs (of the unpruned) | params | bytes | pruning ratios |",
        "|---|---|---|---|---|---|---|"]
    base = r["unpruned"]["macs"]
    for name, key in (("unpruned decoder", "unpruned"), ("--auto, macs<=50%", "auto"),
                      ("uniform L1 at auto's MACs", "uniform"),
                      ("uniform L1, one ratio for every layer, at or above 50% MACs", "uniform_above"),
                      ("uniform L1, one ratio for every layer, at or below 50% MACs", "uniform_below")):
        if key not in r:  # results from before the uniform row at auto's MACs
            continue
        m = r[key]
        ratios = ", ".join(f"{k.removeprefix('blocks.')} {v:.2f}" for k, v in m.get("ratios", {}).items())
        ratios = f"all {m['ratio']:.2f}" if "ratio" in m else ratios
        if "heads_removed" in m:
            heads = sorted(set(m["heads_removed"].values()))
            ratios = f"MLP neurons {m['ratio']:.3f}, heads removed {'/'.join(map(str, heads))} of {r['decoder']['arch']['heads']}"
        lines.append(f"| {name} | {m['val_perplexity']:.3f} | {m['test_perplexity']:.3f} | {m['macs']:,} "
                     f"({100 * m['macs'] / base:.1f}%) | "
                     f"{m['params']:,} | {m['bytes']:,} | {ratios} |")
    refine = r["auto"].get("refine")
    if refine:  # results from before the rows were kept have none
        several = len({x.get("trial") for x in refine}) > 1  # refine_top > 1: the best trials' shapes

        def which(x: dict) -> str:
            return f"trial {x['trial']} " if several else ""

        lines += ["", f"--auto's refinement of the chosen ratios ({refine[0]['epochs']}-epoch fine-tunes, validation "
                  "perplexity; the best's " + ("shape, " if several else "") + "criterion and learning rate go to the "
                  "final fine-tune, and its learning rate to uniform's): "
                  + ", ".join(f"{which(x)}{x['importance']} lr {x['lr']:g}: {x['val_perplexity']:.3f}"
                              for x in refine) + "."]
    b = r.get("test_bootstrap")
    if b:  # results from before the bootstrap have none
        gap, above = b["auto_minus_uniform"], b["auto_percent_above_unpruned"]
        lines += ["", f"The test split's sampling error (a paired bootstrap over its {b['files']} source files, "
                  f"{b['resamples']} resamples, every model on the same files): auto minus uniform "
                  f"{gap['ci95'][0]:+.3f} to {gap['ci95'][1]:+.3f} (95%; auto below in "
                  f"{100 * b['auto_below_uniform_share']:.0f}% of resamples); auto's percent above the unpruned "
                  f"decoder {above['ci95'][0]:+.2f} to {above['ci95'][1]:+.2f} (within 10% in "
                  f"{100 * b['auto_within_10_share']:.0f}%)."]
    g = r["ngram_test_perplexity"]
    lines += ["", f"For scale, test perplexity of character n-grams counted on the training windows (add-0.1): "
              f"unigram {g['unigram']:.2f}, bigram {g['bigram']:.2f}. Seconds: {r['seconds']}."]
    return lines


# ---------------------------------------------------------------------------------------------

#: section name -> function(args, work_dir) returning {"title", "checks", "markdown", ...}
SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict]] = {"regression": regression, "multilabel": multilabel,
                                                                    "lm": lm, "detection": detection}


def markdown(result: dict) -> str:
    lines = ["# Tasks beyond classification: slimnas search against classical baselines", ""]
    for section in result["sections"].values():
        lines += [f"## {section['title']}", "", *section["markdown"], ""]
    lines += ["## Targets", ""]
    for name, c in result["checks"].items():
        mark = "x" if c["met"] else " "
        if "points" in c:
            lines.append(f"- [{mark}] {name}: **{c['points']:+.2f} points**")
        else:
            v = c["value"]
            lines.append(f"- [{mark}] {name}" + (f": **{v:+.3f}**" if isinstance(v, float) else ""))
    per = ", ".join(f"{k} {v} s" for k, v in result["section_seconds"].items())
    lines += ["", "Test figures come from each kept model's ONNX file in ONNX Runtime on the test split (the same "
              "figure as the search's own `test_<metric>`).", "",
              f"Run took {result['seconds']} s ({per}; {'quick' if result['quick'] else 'full'} run; "
              f"commit {result['package']['commit'][:10]}). Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one split, 3 trials, 3 epochs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results files")
    parser.add_argument("--seed", type=int, default=0, help="the searches' seed")
    parser.add_argument("--regression-trials", type=int, default=40, help="search trials per diabetes split")
    parser.add_argument("--regression-splits", type=int, default=5, help="diabetes splits (data.seed 0..n-1)")
    parser.add_argument("--multilabel-trials", type=int, default=20, help="search trials per digits-multilabel split")
    parser.add_argument("--multilabel-splits", type=int, default=3, help="digits-multilabel splits")
    parser.add_argument("--lm-trials", type=int, default=12, help="auto_compress trials of the lm section")
    parser.add_argument("--lm-final-epochs", type=int, default=10, help="final fine-tune epochs (auto and uniform)")
    parser.add_argument("--lm-refine-epochs", type=int, default=None,
                        help="benchmark-only: the lm section's --auto refinement epochs (default: the package's rule)")
    parser.add_argument("--lm-refine-top", type=int, default=1,
                        help="the lm section's --auto refine_top: how many of the best trials' shapes its refinement "
                             "fine-tunes (default: the package's, 1)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the test rows")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections: expected names from {list(SECTIONS)}, got {unknown or args.sections!r}")
    if args.quick:
        args.bootstrap = min(args.bootstrap, 50)
    t0 = time.time()
    command = "python benchmarks/tasks.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result: dict = {"package": package_state(), "command": command.strip(), "quick": args.quick,
                    "settings": vars(args), "sections": {}, "checks": {}, "section_seconds": {}}
    return run_sections("tasks", sections, SECTIONS, args, result, markdown, t0)


if __name__ == "__main__":
    main()
