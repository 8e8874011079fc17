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

#: section name -> function(args, work_dir) returning {"title", "checks", "markdown", ...}
SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict]] = {"regression": regression, "multilabel": multilabel}


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
