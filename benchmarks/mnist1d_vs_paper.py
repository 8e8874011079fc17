"""MNIST-1D: a slimnas search against the paper's CNN, in one run.

1. Trains the MNIST-1D paper CNN (Greydanus 2020; 5,210 parameters, 31,750 MACs) with slimnas's
   own trainer on the same training split the search uses, once with the paper's recipe (Adam,
   lr 1e-2, batch 100, ~6000 steps, constant rate) and once with the search space's central recipe
   (AdamW, lr 2e-2, weight decay 0.2, cosine, 60 epochs), so the comparison separates what the
   recipe buys from what the architecture search buys.
2. Runs a search (``benchmarks/configs/mnist1d_vs_paper.yaml``: accuracy and MACs, budget
   ``macs<=31750`` and ``macs>=5000``) on 2 CPU cores, stopped by a wall-clock limit
   (``--minutes``, default 20): two worker processes of one PyTorch thread each share the study
   through its SQLite storage (tiny models train fastest on one thread; two workers keep both
   cores busy).
3. Writes ``mnist1d_vs_paper.json`` and ``.md`` with test accuracy, parameters and MACs of the
   paper CNN and of every front member, and checks the targets:

   - a front model at or below the paper CNN's MACs with test accuracy >= 96.5%;
   - a front model at or below a quarter of its MACs (~7.9k) with test accuracy >= 94%.

Data: the paper's split, 4000 train and 1000 test sequences; slimnas carves 800 of the 4000 for
validation (search decisions and the front use validation only; the test set is read once per
reported model).

Usage::

    python benchmarks/mnist1d_vs_paper.py                 # the full benchmark (~22 minutes)
    python benchmarks/mnist1d_vs_paper.py --quick         # a ~2-minute smoke run, not the targets
    python benchmarks/mnist1d_vs_paper.py --minutes 10 --out /tmp/mnist1d
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import NO_CAP, commit_label, package_state  # benchmarks/ is on sys.path as a script

import slimnas
from slimnas.config import load_config
from slimnas.data import load_dataset
from slimnas.measure import count_macs, count_params
from slimnas.models import mnist1d_paper_cnn
from slimnas.report import arch_summary
from slimnas.spaces import TrainSpec
from slimnas.training import evaluate, fit

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "mnist1d_vs_paper.yaml"
RESULTS = HERE / "results"
NAME = "mnist1d_vs_paper"

THREADS = 1  # PyTorch threads per process; --workers processes run side by side
TARGETS = (  # (label, share of the paper CNN's MACs, test accuracy needed)
    ("at or below the paper CNN's MACs", 1.0, 0.965),
    ("at or below a quarter of its MACs", 0.25, 0.94),
)
# The paper's recipe: Adam, lr 1e-2, batch 100, 6000 steps, no decay. On 3200 training
# sequences that is 32 steps an epoch, so 188 epochs (6016 steps).
PAPER_RECIPE = TrainSpec(optimizer="adam", lr=1e-2, weight_decay=0.0, batch_size=100, epochs=188,
                         schedule="constant")
# The centre of the search space's recipe ranges (see the config), for a like-for-like row.
SEARCH_RECIPE = TrainSpec(optimizer="adamw", lr=2e-2, weight_decay=0.2, batch_size=128, epochs=60,
                          schedule="cosine")
# Leave room for the trial running when the search's timeout fires, and for the test pass.
FINISH_MARGIN_S = 45.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0,
                   help="wall-clock limit of the search in minutes (default 20)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for mnist1d_vs_paper.json/.md (default benchmarks/results; "
                        "runs/mnist1d_vs_paper/quick with --quick)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="the search's run folder (default runs/mnist1d_vs_paper/<UTC time>)")
    p.add_argument("--config", type=Path, default=CONFIG, help="search config (default: the benchmark's)")
    p.add_argument("--n-trials", type=int, default=NO_CAP,
                   help="cap on trials (default: none that binds; --minutes ends the search)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search and of training")
    p.add_argument("--workers", type=int, default=2,
                   help="search processes sharing the study, one core each (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: few epochs, a 1.5-minute search; checks the plumbing, not the targets")
    args = p.parse_args(argv)
    if args.minutes <= 0:
        p.error("--minutes must be > 0")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def run_search(args, run_dir: Path, timeout: float, quick: bool):
    """Run the search with ``args.workers`` processes on one study (``slimnas.search``'s
    ``workers``); the front covers every worker's trials and is tested once."""
    from rich.console import Console

    from slimnas.cli import ConsoleListener

    torch.set_num_threads(THREADS)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # The log sits beside the run folder: slimnas claims only an empty folder or one of its own runs.
    with open(run_dir.parent / f"{run_dir.name}-search.log", "w") as log:
        return slimnas.search(str(args.config), out=str(run_dir), seed=args.seed, timeout=timeout,
                              n_trials=6 if quick else args.n_trials, epochs=3 if quick else None,
                              workers=args.workers,
                              listener=ConsoleListener(Console(file=log, width=120), live=False))


def train_reference(splits, spec: TrainSpec, seed: int) -> dict:
    """Train the paper CNN with ``spec`` on the search's training split; test it once."""
    torch.manual_seed(seed)
    model = mnist1d_paper_cnn(splits.n_classes)
    shape = splits.input_shape
    t0 = time.perf_counter()
    history = fit(model, splits.x_train, splits.y_train, spec, x_val=splits.x_val, y_val=splits.y_val, seed=seed)
    seconds = time.perf_counter() - t0
    val = evaluate(model, splits.x_val, splits.y_val)
    test = evaluate(model, splits.x_test, splits.y_test)
    steps = len(history.epochs) * -(-len(splits.y_train) // spec.batch_size)
    return {
        "val_accuracy": val["accuracy"],
        "test_accuracy": test["accuracy"],
        "params": count_params(model),
        "macs": count_macs(model, shape),
        "train": {k: getattr(spec, k) for k in ("optimizer", "lr", "weight_decay", "batch_size", "epochs", "schedule")},
        "steps": steps,
        "seconds": round(seconds, 1),
    }


def recipe_summary(train: dict) -> str:
    wd = f" wd {train['weight_decay']:.3g}" if train.get("weight_decay") else ""
    return f"{train['optimizer']} lr {train['lr']:.3g}{wd} bs {train['batch_size']} {train['epochs']}ep {train['schedule']}"


def check_targets(front: list[dict], paper_macs: int) -> list[dict]:
    out = []
    for label, share, needed in TARGETS:
        limit = paper_macs * share
        within = [m for m in front if m["macs"] <= limit]
        best = max(within, key=lambda m: (m["test_accuracy"], -m["macs"]), default=None)
        out.append({
            "target": f"front model {label} ({limit:,.0f}) with test accuracy >= {needed:.1%}",
            "max_macs": limit,
            "min_test_accuracy": needed,
            "best_trial": None if best is None else best["trial"],
            "best_test_accuracy": None if best is None else best["test_accuracy"],
            "best_macs": None if best is None else best["macs"],
            "met": best is not None and best["test_accuracy"] >= needed,
        })
    return out


def _measured_at(doc: dict) -> str:
    """", commit X" (results written before the commit was recorded have none)."""
    package = doc.get("package")
    if not package or not package.get("commit"):
        return ""
    return f", commit {commit_label(package)}"


def markdown(doc: dict) -> str:
    s = doc["search"]
    lines = [
        "# MNIST-1D: slimnas search vs the paper CNN",
        "",
        f"Generated by `{doc['command']}` on {doc['date']} "
        f"({doc['machine']['cpus']} CPUs visible, {doc['search']['workers']} search workers of "
        f"{doc['search']['torch_threads_per_worker']} PyTorch thread each, "
        f"torch {doc['machine']['torch']}, slimnas {doc['slimnas']}{_measured_at(doc)}).",
        "",
        f"Data: {doc['data']}. All models are trained by the same trainer on the same 3200 sequences; "
        "the search and the front use the 800 validation sequences, the 1000 test sequences are read "
        "once per reported model.",
        "",
        "## Targets (test accuracy)",
        "",
        "| target | best front model | test acc | MACs | met |",
        "|---|---:|---:|---:|:---:|",
    ]
    for t in doc["targets"]:
        best = "-" if t["best_trial"] is None else f"trial {t['best_trial']}"
        acc = "-" if t["best_test_accuracy"] is None else f"{t['best_test_accuracy']:.1%}"
        macs = "-" if t["best_macs"] is None else f"{t['best_macs']:,}"
        lines.append(f"| {t['target']} | {best} | {acc} | {macs} | {'yes' if t['met'] else 'no'} |")
    lines += [
        "",
        "## Paper CNN (Greydanus 2020), slimnas trainer",
        "",
        "| recipe | val acc | test acc | params | MACs | steps | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in doc["paper_cnn"].items():
        lines.append(f"| {name}: {recipe_summary(r['train'])} | {r['val_accuracy']:.1%} | {r['test_accuracy']:.1%} | "
                     f"{r['params']:,} | {r['macs']:,} | {r['steps']:,} | {r['seconds']} |")
    lines += [
        "",
        f"## Search front ({s['strategy']}, objectives {', '.join(s['objectives'])}, budget {', '.join(s['budget'])})",
        "",
        f"{s['n_finished']} trials finished ({s['n_trained']} trained, {s['n_skipped']} outside the budget and not "
        f"trained) in {s['seconds'] / 60:.1f} minutes (limit {s['minutes']:g}); run folder `{s['run_dir']}`.",
        "",
        "| trial | architecture | recipe | dropout | val acc | test acc | params | MACs | bytes |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in doc["front"]:
        lines.append(f"| {m['trial']} | {m['architecture']} | {recipe_summary(m['train'])} | {m['dropout']:g} | "
                     f"{m['val_accuracy']:.1%} | {m['test_accuracy']:.1%} | {m['params']:,} | {m['macs']:,} | "
                     f"{m['bytes']:,} |")
    if not doc["front"]:
        lines.append("| - | no trial met the budget | | | | | | | |")
    lines += [
        "",
        "Architecture notation: `8k5s2` is a conv with 8 output channels, kernel 5, stride 2; `gap`/`flatten` "
        "is the head; `bn` batch norm; `res` residual skips. MACs are per sample, counted exactly by "
        "PyTorch's FLOP counter (convolutions and linear layers).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(THREADS)
    out = args.out or (Path("runs") / NAME / "quick" if args.quick else RESULTS)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.run_dir or Path("runs") / NAME / (f"quick-{stamp}" if args.quick else stamp)
    minutes = min(args.minutes, 1.5) if args.quick else args.minutes

    splits = load_dataset("mnist1d", val_fraction=0.2, seed=0)
    print(f"[1/3] paper CNN on {splits.summary()}", flush=True)
    recipes = {"paper recipe": PAPER_RECIPE, "search-space recipe": SEARCH_RECIPE}
    if args.quick:
        recipes = {k: TrainSpec(**{**v.__dict__, "epochs": 3}) for k, v in recipes.items()}
    paper = {}
    for name, spec in recipes.items():
        paper[name] = train_reference(splits, spec, args.seed)
        r = paper[name]
        print(f"      {name}: test {r['test_accuracy']:.1%}  params {r['params']:,}  MACs {r['macs']:,}  "
              f"({r['seconds']} s)", flush=True)
    paper_macs = next(iter(paper.values()))["macs"]

    timeout = max(30.0, minutes * 60 - FINISH_MARGIN_S)
    print(f"[2/3] search for at most {minutes:g} minutes -> {run_dir}", flush=True)
    t0 = time.perf_counter()
    budget = [str(b) for b in load_config(args.config).budget]
    if f"macs<={paper_macs}" not in budget:
        print(f"      note: the config's budget {budget} is not the paper CNN's MACs (macs<={paper_macs})")
    result = run_search(args, run_dir, timeout, args.quick)
    search_s = time.perf_counter() - t0
    trials = result.study.get_trials(deepcopy=False)
    states = [t.user_attrs.get("metrics", {}).get("trained") for t in trials]

    front = []
    for m in result.front:
        x = m.metrics
        front.append({
            "trial": m.trial,
            "architecture": arch_summary(m.candidate),
            "arch": m.candidate["arch"],
            "train": m.candidate["train"],
            "dropout": m.candidate["arch"].get("dropout", 0.0),
            **{k: x[k] for k in ("val_accuracy", "test_accuracy", "params", "macs", "bytes")},
        })
    cfg = result.config
    doc = {
        "benchmark": NAME,
        "command": " ".join(["python", "benchmarks/mnist1d_vs_paper.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "slimnas": slimnas.__version__,
        "package": package_state(),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "data": splits.summary(),
        "paper_cnn": paper,
        "search": {
            "config": str(args.config),
            "run_dir": str(result.run_dir),
            "strategy": cfg.strategy.name,
            "objectives": list(cfg.objectives),
            "budget": [str(b) for b in result.plan.budget],
            "seed": args.seed,
            "workers": args.workers,
            "torch_threads_per_worker": THREADS,
            "minutes": minutes,
            "seconds": round(search_s, 1),
            "n_finished": sum(1 for s in states if s is not None),
            "n_trained": sum(1 for s in states if s),
            "n_skipped": sum(1 for s in states if s is False),
        },
        "front": front,
        "targets": check_targets(front, paper_macs),
    }
    print(f"[3/3] {len(front)} front models; writing {out}/{NAME}.json and .md", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / f"{NAME}.md").write_text(markdown(doc))
    for t in doc["targets"]:
        acc = "-" if t["best_test_accuracy"] is None else f"{t['best_test_accuracy']:.1%}"
        print(f"      {'MET ' if t['met'] else 'MISS'} {t['target']}: best {acc} "
              f"(trial {t['best_trial']}, MACs {t['best_macs']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
