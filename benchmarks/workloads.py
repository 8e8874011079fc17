"""Workloads beyond MNIST-1D, one section each, in one run.

- ``tabular``: scikit-learn's wine and breast-cancer data saved as ``.npz`` files, searched with
  ``slimnas search`` as a new user would (features on very different scales, so slimnas
  standardises them one by one, with training statistics), against logistic regression on the
  same split, standardised the same way, on several splits. Target: within 1 point of test
  accuracy (the mean over the splits), or better.
  For reference the same search with the single mean and std of before (``normalize: global``).
- ``image``: the procedural 32x32 task (``shapes32``): a search over the residual and
  inverted-residual families, and a ResNet-18 (CIFAR layout) compressed with ``--auto`` to 50% and
  25% of its MACs (accuracy lost, ONNX Runtime latency drop against MAC drop at batch 1 and 32).
- ``text``: the procedural text task: a Transformer encoder, heads and MLP neurons pruned to 50%
  of its MACs, then int8 (accuracy lost, latency drop, file bytes).
  Both live in ``benchmarks/_workloads_models.py``.

Every section returns its figures, its targets (``{"met": bool, ...}``) and its Markdown; the
script writes ``workloads.{json,md}`` (a run of some sections only: ``workloads_<sections>``;
``--quick``: ``_quick``) under ``--out`` (default ``benchmarks/results``).

Usage: ``python benchmarks/workloads.py [--sections tabular,...] [--quick] [--out DIR] [--seed 0]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _workloads_models
import numpy as np
import torch
from _common import (  # benchmarks/ is on sys.path when run as a script
    package_state,
    run_sections,
    slimnas_search,
)

from slimnas.data import load_dataset

RESULTS = Path(__file__).parent / "results"

# ---------------------------------------------------------------------------------------------
# tabular


TABULAR_SETS = {"wine": "load_wine", "breast-cancer": "load_breast_cancer"}
TABULAR_SPACE = {
    "family": ["mlp"],
    "mlp": {"n_layers": {"low": 1, "high": 2}, "width": [16, 32, 64], "batch_norm": [False, True],
            "dropout": [0.0, 0.2]},
}
TABULAR_TRAINING = {"optimizer": ["adam", "adamw"], "lr": {"low": 1e-3, "high": 3e-2, "log": True},
                    "weight_decay": [0.0, 1e-4], "batch_size": [16, 32], "epochs": 60}


def best_on_validation(pareto: dict) -> dict:
    """The front member a user keeps for accuracy: the best validation accuracy, then the lowest
    validation loss (test data chooses nothing)."""
    return max(pareto["front"], key=lambda m: (m["metrics"]["val_accuracy"], -m["metrics"].get("val_loss", 0.0)))


def tabular(args: argparse.Namespace, work: Path) -> dict:
    """Wine and breast cancer through ``slimnas search`` vs logistic regression on the same
    splits, over several splits (one split of wine tests 36 samples: one sample is 2.8 points)."""
    import sklearn.datasets
    from sklearn.linear_model import LogisticRegression

    n_trials = 3 if args.quick else args.tabular_trials
    n_splits = 1 if args.quick else args.tabular_splits
    training = {**TABULAR_TRAINING, "epochs": 5 if args.quick else TABULAR_TRAINING["epochs"]}
    rows, checks = [], {}
    for name, loader in TABULAR_SETS.items():
        d = getattr(sklearn.datasets, loader)()
        path = work / f"{name}.npz"
        np.savez(path, x=d.data, y=d.target)  # as a user saves it: raw features, float64
        row: dict = {"dataset": name, "n_samples": int(len(d.target)), "n_features": int(d.data.shape[1]),
                     "feature_scale_range": [float(np.abs(d.data).mean(0).min()), float(np.abs(d.data).mean(0).max())],
                     "splits": []}
        for split_seed in range(n_splits):
            # the split (and the standardisation) slimnas's search uses: data.seed picks it
            splits = load_dataset(str(path), seed=split_seed)
            flat = {k: getattr(splits, k).flatten(1).numpy() for k in ("x_train", "x_test")}
            lr = LogisticRegression(max_iter=5000).fit(flat["x_train"], splits.y_train.numpy())
            entry: dict = {"data_seed": split_seed, "n_classes": splits.n_classes,
                           "sizes": {"train": len(splits.y_train), "val": len(splits.y_val), "test": len(splits.y_test)},
                           "logistic_regression": round(float(lr.score(flat["x_test"], splits.y_test.numpy())), 4)}
            variants = (("per_feature", "auto"), ("global", "global")) if split_seed == 0 else (("per_feature", "auto"),)
            for variant, normalize in variants:
                data = {"dataset": str(path), "seed": split_seed}
                if normalize != "auto":
                    data["normalize"] = normalize
                config = {"data": data, "objectives": ["accuracy", "macs"], "space": TABULAR_SPACE,
                          "training": training}
                t0 = time.time()
                pareto = slimnas_search(config, work / f"{name}-{variant}-{split_seed}", n_trials, args.seed)
                best = best_on_validation(pareto)
                m = best["metrics"]
                entry[variant] = {"test_accuracy": round(m["test_accuracy"], 4), "val_accuracy": round(m["val_accuracy"], 4),
                                  "macs": m["macs"], "params": m["params"], "trial": best["trial"], "arch": best["arch"],
                                  "train": best["train"], "front_size": len(pareto["front"]),
                                  "seconds": round(time.time() - t0, 1)}
                print(f"tabular {name} split {split_seed} {variant}: test {m['test_accuracy']:.3f} vs logistic "
                      f"regression {entry['logistic_regression']:.3f}", file=sys.stderr)
            row["splits"].append(entry)
        row["mean"] = {k: round(float(np.mean([e[k] if k == "logistic_regression" else e[k]["test_accuracy"]
                                                for e in row["splits"]])), 4)
                       for k in ("logistic_regression", "per_feature")}
        row["within_1_point_splits"] = sum(e["per_feature"]["test_accuracy"] >= e["logistic_regression"] - 0.01
                                           for e in row["splits"])
        gap = 100 * (row["mean"]["per_feature"] - row["mean"]["logistic_regression"])
        checks[f"{name}: slimnas search within 1 point of logistic regression (or better), mean test accuracy over "
               f"{n_splits} split(s)"] = {"points": round(gap, 2) + 0.0, "met": gap >= -1.0}
        rows.append(row)
    return {"title": "Tabular: scikit-learn's wine and breast cancer as .npz files",
            "settings": {"n_trials": n_trials, "n_splits": n_splits, "strategy": "tpe",
                         "objectives": ["accuracy", "macs"], "space": TABULAR_SPACE, "training": training,
                         "seed": args.seed},
            "rows": rows, "checks": checks, "markdown": tabular_markdown(rows, n_trials, n_splits, training)}


def tabular_markdown(rows: list[dict], n_trials: int, n_splits: int, training: dict) -> list[str]:
    lines = [
        f"Each dataset saved as `.npz` (`x`, `y`: raw features) and searched with `slimnas search` ({n_trials} "
        f"TPE trials, objectives accuracy and MACs, MLPs of 1-2 layers, {training['epochs']} epochs), on "
        f"{n_splits} train/validation/test split(s) (`data.seed` 0-{n_splits - 1}); the front member with the best "
        "validation accuracy (then validation loss) is tested once. Logistic regression (scikit-learn, C=1) is "
        "fitted on the same training split, standardised with the same training statistics, and tested on the "
        "same test split. `normalize: global` (split 0 only) is the single mean and std files got before: what "
        "per-feature scaling changes.", "",
        "| dataset | samples | features (mean abs. value, from-to) | test per split | logistic regression "
        "| slimnas, per feature | splits within 1 point | slimnas, one mean/std (split 0) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r["feature_scale_range"]
        lines.append(f"| {r['dataset']} | {r['n_samples']} | {r['n_features']} ({lo:.3g}-{hi:.3g}) | "
                     f"{r['splits'][0]['sizes']['test']} | {r['mean']['logistic_regression']:.3f} | "
                     f"{r['mean']['per_feature']:.3f} | {r['within_1_point_splits']}/{len(r['splits'])} | "
                     f"{r['splits'][0]['global']['test_accuracy']:.3f} vs {r['splits'][0]['logistic_regression']:.3f} |")
    lines += ["", "Per split (test accuracy, logistic regression / slimnas per feature; the model kept):", ""]
    for r in rows:
        for e in r["splits"]:
            a = e["per_feature"]["arch"]
            arch = f"mlp {'-'.join(map(str, a.get('widths', [])))}{' bn' if a.get('batch_norm') else ''}"
            lines.append(f"- {r['dataset']}, split {e['data_seed']}: {e['logistic_regression']:.3f} / "
                         f"{e['per_feature']['test_accuracy']:.3f} ({arch}, {e['per_feature']['macs']:,} MACs)")
    return lines


# ---------------------------------------------------------------------------------------------

#: section name -> function(args, work_dir) returning {"title", "checks", "markdown", ...}
SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict]] = {
    "tabular": tabular, "image": _workloads_models.image_section, "text": _workloads_models.text_section}


def markdown(result: dict) -> str:
    lines = ["# Workloads beyond MNIST-1D", ""]
    for section in result["sections"].values():
        lines += [f"## {section['title']}", "", *section["markdown"], ""]
    lines += ["## Targets", ""]
    for name, c in result["checks"].items():
        mark = "x" if c["met"] else " "
        if "points" in c:
            lines.append(f"- [{mark}] {name}: **{c['points']:+.2f} points**")
        elif c.get("value") is not None:
            v = c["value"]
            lines.append(f"- [{mark}] {name}: **{v:,}**" if isinstance(v, int) else f"- [{mark}] {name}: **{v:.3f}**")
        else:
            lines.append(f"- [{mark}] {name}")
    per = ", ".join(f"{k} {v} s" for k, v in result["section_seconds"].items())
    lines += ["", "Accuracies of the image and text models come from their ONNX files in ONNX Runtime; latency: "
              "ONNX Runtime, CPU, one thread, medians of interleaved rounds (ratios within this run are what "
              "counts; absolute milliseconds are this machine's).", "",
              f"Run took {result['seconds']} s ({per}; {'quick' if result['quick'] else 'full'} run; "
              f"commit {result['package']['commit'][:10]}). Command: `{result['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few trials, few epochs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tabular-trials", type=int, default=20, help="search trials per tabular dataset and split")
    parser.add_argument("--tabular-splits", type=int, default=5, help="train/val/test splits per tabular dataset")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads for training (latency: one thread)")
    _workloads_models.add_arguments(parser)
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections: expected names from {list(SECTIONS)}, got {unknown or args.sections!r}")
    torch.set_num_threads(args.threads)
    args.t0 = t0 = time.time()
    command = "python benchmarks/workloads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result: dict = {"package": package_state(), "command": command.strip(), "quick": args.quick, "seed": args.seed,
                    "settings": {k: v for k, v in vars(args).items() if k != "t0"}, "sections": {}, "checks": {},
                    "section_seconds": {}}
    return run_sections("workloads", sections, SECTIONS, args, result, markdown, t0)


if __name__ == "__main__":
    main()
