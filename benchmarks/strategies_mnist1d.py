"""Every registered search strategy on the ``mnist1d_vs_paper`` space and budget, at equal
wall-clock: hypervolume of (validation and test accuracy, MACs) over time, random search as the
baseline.

Each strategy runs ``slimnas.search`` on ``benchmarks/configs/mnist1d_vs_paper.yaml`` (accuracy
and MACs, budget ``macs<=31750`` and ``macs>=5000``, two worker processes of one PyTorch thread
each, as ``mnist1d_vs_paper.py`` does) with ``--strategy NAME``, once per seed, for
``--minutes`` of wall-clock each (a one-shot strategy's search before its first trial counts).
From each study:

- the front over time: at every trial completion, the feasible trials finished so far, their
  Pareto front by validation accuracy and MACs (what the search would report then);
- its hypervolume of ``(1 - accuracy, MACs / 31750)`` up to ``(1, 1)``, with the validation
  accuracy that chose the front, and with the test accuracy of the same front members (their ONNX
  files in ONNX Runtime; the test set plays no part in any decision).

Targets (``met`` flags; means over seeds):

- evolution, local search and TPE each beat random's final hypervolume, on validation and on test
  accuracy;
- ``supernet`` (when registered): reaches random's final hypervolume within 2 minutes of search
  after its one-off supernet training, and within half of random's wall-clock with the training
  counted; its front has a model >= 96.5% test accuracy at <= 31.7k MACs and one >= 94% at
  <= 7.9k MACs within 10 minutes in all. "not run" when no ``supernet`` strategy is registered.

Strategies that take a single objective (``cmaes``) are listed as refused. Writes
``strategies_mnist1d.{json,md}`` and a plot (``.png`` with matplotlib, else ``.html`` with plotly).

Usage::

    python benchmarks/strategies_mnist1d.py                        # all strategies, 20 min x 3 seeds each
    python benchmarks/strategies_mnist1d.py --minutes 3 --seeds 0,1 --strategies random,tpe,evolution,local
    python benchmarks/strategies_mnist1d.py --budget-s 600,darts=900   # seconds per run, per strategy
    python benchmarks/strategies_mnist1d.py --seeds 0,1,2,3,4 --seeds-for darts=0   # fewer seeds for one
    python benchmarks/strategies_mnist1d.py --options 'darts={"search_epochs": 6}'  # a strategy's options
    python benchmarks/strategies_mnist1d.py --quick                # a smoke run of every strategy (~5 min)

``--budget-s`` gives the wall-clock of one run (one strategy, one seed) in seconds, for every
strategy, with ``NAME=SECONDS`` entries for single strategies (the comparison is at equal
wall-clock only when they are all equal: the hypervolumes are compared at each run's own end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
import yaml
from _common import package_state  # benchmarks/ is on sys.path when run as a script

import slimnas
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import onnx_accuracy
from slimnas.measure import Budget
from slimnas.strategies import list_strategies
from slimnas.study import RunFolder, feasible, hypervolume_2d, pareto_front

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "mnist1d_vs_paper.yaml"
RESULTS = HERE / "results"
NAME = "strategies_mnist1d"
FINISH_MARGIN_S = 20.0  # the trial running when the timeout fires, and the front's test pass
BEAT_RANDOM = ("evolution", "local", "tpe")
SUPERNET_TARGETS = ((31_750, 0.965), (7_938, 0.94))  # (MACs at most, test accuracy at least): the paper targets
QUICK_OPTIONS = {"darts": {"warmup_epochs": 0, "search_epochs": 1, "penalty_weights": [0.5], "batch_size": 256}}
QUICK_SECONDS = 15.0  # per strategy in a --quick run (one seed, one worker, 2-epoch training)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock per strategy and seed (default 20)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--seeds-for", action="append", default=[], metavar="NAME=SEEDS",
                   help="other seeds for one strategy, e.g. darts=0 or rl=0,1,2 (repeatable; default: --seeds)")
    p.add_argument("--strategies", default=None, help="comma-separated names (default: every registered one)")
    p.add_argument("--options", dest="options_", action="append", default=[], metavar="NAME=JSON",
                   help="strategy.options for one strategy, e.g. 'darts={\"search_epochs\": 6}' (repeatable)")
    p.add_argument("--workers", type=int, default=2, help="search processes per run (default 2, one core each)")
    p.add_argument("--config", type=Path, default=CONFIG)
    p.add_argument("--work", type=Path, default=None, help="run folders (default: a temporary folder, removed)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--budget-s", default=None,
                   help="seconds per run: SECONDS for every strategy, then NAME=SECONDS entries for single ones "
                        "(e.g. 600,darts=900); overrides --minutes")
    p.add_argument("--reuse", type=Path, action="append", default=[],
                   help="a results JSON of this benchmark: its runs of the same strategies, seeds, wall-clock, options, "
                        "workers and config are taken from it, not run again (the report names the commit each was "
                        "measured at); repeatable, an earlier file's run wins")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_SECONDS:.0f} s per strategy, seed 0, one worker, 2-epoch training")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.seeds, args.workers = QUICK_SECONDS / 60, "0", 1
    args.seeds = _seed_list(p, "--seeds", str(args.seeds))
    names = list_strategies() if args.strategies is None else [s.strip() for s in args.strategies.split(",")]
    unknown = [n for n in names if n not in list_strategies()]
    if unknown:
        p.error(f"unknown strategies {unknown}; registered: {list_strategies()}")
    args.names = ["random", *[n for n in names if n != "random"]]  # the baseline first
    args.seeds_by = {n: args.seeds for n in args.names} | _per_strategy(
        p, "--seeds-for", "SEEDS (comma-separated integers)", args.seeds_for, args.names, _seeds)
    args.options = (dict(QUICK_OPTIONS) if args.quick else {}) | _per_strategy(
        p, "--options", "JSON (an object)", args.options_, args.names, _json_object)
    default, single = args.minutes * 60, {}
    for part in (args.budget_s or "").split(","):
        name, _, value = part.strip().rpartition("=")
        if not value:
            continue
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds <= 0 or (name and name not in args.names):
            p.error(f"--budget-s: expected SECONDS or NAME=SECONDS (seconds > 0, NAME one of {args.names}), "
                    f"got {part!r}")
        if name:
            single[name] = seconds
        else:
            default = seconds
    args.budget = {n: single.get(n, default) for n in args.names}  # seconds per run
    return args


def _seeds(text: str) -> list[int] | None:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip() != ""]
    except ValueError:
        return None
    return seeds or None


def _json_object(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _seed_list(p: argparse.ArgumentParser, flag: str, text: str) -> list[int]:
    seeds = _seeds(text)
    if seeds is None:
        p.error(f"{flag}: expected comma-separated integer seeds, got {text!r}")
    return seeds


def _per_strategy(p: argparse.ArgumentParser, flag: str, what: str, entries: list[str], names: list[str],
                  parse) -> dict:
    """``{NAME: parse(VALUE)}`` from ``NAME=VALUE`` entries; a bad entry is a one-line usage error."""
    out = {}
    for entry in entries:
        name, _, text = entry.partition("=")
        value = parse(text)
        if name.strip() not in names or value is None:
            p.error(f"{flag}: expected NAME={what} with NAME one of {names}, got {entry!r}")
        out[name.strip()] = value
    return out


def hv(points: list[tuple[float, float]]) -> float:
    return hypervolume_2d(points, (1.0, 1.0))


class Timeline:
    """The front of a finished search at every trial completion, and its hypervolumes."""

    def __init__(self, study: optuna.Study, run: RunFolder, budget: list[Budget], objectives: list[str], limit: float,
                 data, start: dt.datetime) -> None:
        self.run, self.data, self.limit, self.test = run, data, limit, {}
        done = sorted((t for t in study.get_trials(deepcopy=False)
                       if t.state == optuna.trial.TrialState.COMPLETE and "metrics" in t.user_attrs),
                      key=lambda t: t.datetime_complete)
        self.first_start = min((t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start),
                               default=None)
        self.one_shot_s = (self.first_start - start).total_seconds() if self.first_start else None
        self.points: list[dict] = []
        for k, t in enumerate(done):
            if not feasible(t.user_attrs["metrics"], budget):
                continue
            front, _ = pareto_front(done[:k + 1], objectives, budget)
            val = [(1 - f.user_attrs["metrics"]["val_accuracy"], f.user_attrs["metrics"]["macs"] / limit) for f in front]
            test = [(1 - self.test_accuracy(f.number), f.user_attrs["metrics"]["macs"] / limit) for f in front]
            self.points.append({"t": round((t.datetime_complete - start).total_seconds(), 1), "trial": t.number,
                                "hv_val": hv(val), "hv_test": hv(test),
                                "front": [{"trial": f.number, "val_accuracy": f.user_attrs["metrics"]["val_accuracy"],
                                           "test_accuracy": self.test_accuracy(f.number),
                                           "macs": f.user_attrs["metrics"]["macs"]} for f in front]})
        self.n_complete = len(done)

    def test_accuracy(self, number: int) -> float:
        if number not in self.test:
            self.test[number] = onnx_accuracy(self.run.onnx_path(number), self.data.x_test, self.data.y_test)
        return self.test[number]

    def at(self, seconds: float, key: str) -> float:
        """The hypervolume of the front as it stood ``seconds`` after the start."""
        best = 0.0
        for p in self.points:
            if p["t"] <= seconds:
                best = p[key]
        return best

    def reached(self, value: float, key: str) -> float | None:
        """Seconds until the hypervolume first reached ``value`` (``None``: never)."""
        return next((p["t"] for p in self.points if p[key] >= value - 1e-12), None)

    def front_at(self, seconds: float) -> list[dict]:
        return next((p["front"] for p in reversed(self.points) if p["t"] <= seconds), [])


class StoredTimeline(Timeline):
    """A run's timeline as a results JSON keeps it: the hypervolume curve, and the fronts at the
    run's wall-clock and at 10 minutes."""

    def __init__(self, run: dict, seconds: float) -> None:
        self.one_shot_s, self.n_complete = run["first_trial_seconds"], run["n_complete"]
        self.points = [dict(p) for p in run["curve"]]
        self.fronts = {seconds: run["front"], 600.0: run["front_10min"]}

    def front_at(self, seconds: float) -> list[dict]:
        if seconds not in self.fronts:
            raise ValueError(f"a stored run keeps its front at {sorted(self.fronts)} s only, not at {seconds} s")
        return self.fronts[seconds]


def reused_runs(paths: list[Path], args) -> tuple[dict, dict]:
    """``({(strategy, seed): run}, what was reused)`` from results JSONs of this benchmark whose
    settings match this invocation's (config, workers, wall-clock and options per strategy); a
    run in an earlier file wins."""
    runs: dict = {}
    for path in reversed(paths):
        runs.update(_stored_runs(path, args))
    if not runs:
        return {}, {}
    by_commit: dict[str, dict] = {}
    for (name, seed), r in sorted(runs.items()):
        group = by_commit.setdefault(r["measured_at"]["commit"], {**r["measured_at"], "runs": []})
        group["runs"].append(f"{name} seed {seed}")
    return runs, {"paths": [str(p) for p in paths], "measured_at": list(by_commit.values())}


def _stored_runs(path: Path, args) -> dict:
    doc = json.loads(path.read_text())
    s = doc["settings"]
    if s["workers"] != args.workers or s["quick"] != args.quick or Path(s["config"]).name != args.config.name:
        raise SystemExit(f"--reuse {path}: measured with workers={s['workers']}, quick={s['quick']}, config "
                         f"{Path(s['config']).name}; expected {args.workers}, {args.quick}, {args.config.name}")
    earlier = s.get("reused") or {}
    runs = {}
    for r in doc["runs"]:
        name, seed = r["strategy"], r["seed"]
        if name in args.names and seed in args.seeds_by[name] and s["budget_s"].get(name) == args.budget[name] \
                and "refused" not in r and s.get("options", {}).get(name, {}) == args.options.get(name, {}):
            # where the run was measured: kept with it, else the document's commit, or the one the document
            # itself reused it from (results written before runs carried their commit)
            at = r.get("measured_at") or (
                {"commit": earlier["commit"], "date": earlier["date"]} if f"{name} seed {seed}" in earlier.get("runs", [])
                else {"commit": doc["package"].get("commit"), "date": doc["date"]})
            runs[(name, seed)] = {**r, "measured_at": at, "timeline": StoredTimeline(r, args.budget[name])}
    return runs


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_one(args, name: str, seed: int, raw: dict, data, limit: float, budget: list[Budget]) -> dict:
    cfg = json.loads(json.dumps(raw))
    cfg["strategy"] = {**cfg.get("strategy", {}), "name": name}
    if args.quick:
        cfg["training"]["epochs"] = 2
    if name in args.options:
        cfg["strategy"]["options"] = args.options[name]
    folder = args.work / name / f"seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    seconds = args.budget[name]
    start = dt.datetime.now()
    measured_at = {"commit": args.commit, "date": utc_now()}
    t0 = time.perf_counter()
    try:
        result = slimnas.search(folder / "config.yaml", seed=seed, timeout=max(10.0, seconds - FINISH_MARGIN_S),
                                workers=args.workers, out=str(folder / "run"), n_trials=10_000)
    except ConfigError as e:
        return {"strategy": name, "seed": seed, "refused": str(e)}
    wall = time.perf_counter() - t0
    line = Timeline(result.study, RunFolder(result.run_dir), budget, list(result.plan.objectives), limit, data, start)
    final = {k: line.at(seconds, k) for k in ("hv_val", "hv_test")}
    print(f"  {name} seed {seed}: {line.n_complete} trials in {wall:.0f} s, hypervolume val {final['hv_val']:.4f} "
          f"test {final['hv_test']:.4f}", file=sys.stderr, flush=True)
    return {"strategy": name, "seed": seed, "measured_at": measured_at, "seconds": round(wall, 1), "n_complete": line.n_complete,
            "first_trial_seconds": None if line.one_shot_s is None else round(line.one_shot_s, 1),
            "final": final, "curve": [{k: p[k] for k in ("t", "trial", "hv_val", "hv_test")} for p in line.points],
            "front": line.front_at(seconds), "front_10min": line.front_at(600.0), "timeline": line}


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def supernet_checks(runs: list[dict], random_hv: dict, random_seconds: float) -> list[dict]:
    if not runs:
        return [{"target": t, "met": "not run here (`benchmarks/supernet_mnist1d.py` measures it against a 20-minute "
                                     "random search)"} for t in (
            "supernet reaches random's final hypervolume within 2 minutes of search after its supernet training",
            "supernet reaches it within half of random's wall-clock, training counted",
            "supernet front >= 96.5% test at <= 31.7k MACs and >= 94% at <= 7.9k MACs within 10 minutes")]
    out = []
    after, total, paper = [], [], []
    for r in runs:
        line = r["timeline"]
        reach = line.reached(random_hv["hv_test"], "hv_test")
        train = line.one_shot_s or 0.0
        after.append(None if reach is None else reach - train)
        total.append(reach)
        front = line.front_at(600.0)
        paper.append(all(any(m["macs"] <= macs and m["test_accuracy"] >= acc for m in front)
                         for macs, acc in SUPERNET_TARGETS))
    out.append({"target": "supernet reaches random's final test hypervolume within 2 minutes of search after its "
                          "supernet training", "seconds_after_training": after,
                "met": all(a is not None and a <= 120 for a in after)})
    out.append({"target": "supernet reaches it within half of random's wall-clock, training counted",
                "seconds": total, "limit": random_seconds / 2,
                "met": all(t is not None and t <= random_seconds / 2 for t in total)})
    out.append({"target": "supernet front >= 96.5% test at <= 31.7k MACs and >= 94% at <= 7.9k MACs within 10 "
                          "minutes in all", "per_seed": paper, "met": all(paper)})
    return out


def summarize(runs: list[dict], args) -> dict:
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["strategy"], []).append(r)
    table = {}
    for name, rs in by.items():
        ok = [r for r in rs if "refused" not in r]
        if not ok:
            table[name] = {"refused": rs[0]["refused"]}
            continue
        table[name] = {
            "seeds": [r["seed"] for r in ok],
            "hv_val": mean(r["final"]["hv_val"] for r in ok), "hv_test": mean(r["final"]["hv_test"] for r in ok),
            "hv_val_sd": statistics.pstdev([r["final"]["hv_val"] for r in ok]),
            "hv_test_sd": statistics.pstdev([r["final"]["hv_test"] for r in ok]),
            "n_complete": mean(r["n_complete"] for r in ok),
            "first_trial_seconds": mean(r["first_trial_seconds"] for r in ok),
            "best_test_accuracy": mean(max((m["test_accuracy"] for m in r["front"]), default=None) for r in ok),
        }
    base = table.get("random", {})
    checks = []
    for name in BEAT_RANDOM:
        row = table.get(name)
        if row is None or "refused" in row or "hv_val" not in base:
            checks.append({"target": f"{name} beats random's final hypervolume", "met": "not run"})
            continue
        checks.append({"target": f"{name} beats random's final hypervolume (mean over seeds, validation and test)",
                       "strategy": [row["hv_val"], row["hv_test"]], "random": [base["hv_val"], base["hv_test"]],
                       "met": row["hv_val"] > base["hv_val"] and row["hv_test"] > base["hv_test"]})
    random_seconds = args.budget["random"]
    checks += supernet_checks([r for r in by.get("supernet", []) if "refused" not in r],
                              {"hv_test": base.get("hv_test", math.inf)}, random_seconds)
    return {"table": table, "checks": checks}


def plot(runs: list[dict], seconds: float, path: Path) -> Path:
    grid = [seconds * i / 200 for i in range(201)]
    curves: dict[str, list[list[float]]] = {}
    for r in runs:
        if "refused" not in r:
            curves.setdefault(r["strategy"], []).append([r["timeline"].at(t, "hv_test") for t in grid])
    means = {n: [statistics.fmean(col) for col in zip(*cs, strict=True)] for n, cs in curves.items()}
    xs = [t / 60 for t in grid]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotly is a dependency of slimnas's reports
        import plotly.graph_objects as go

        fig = go.Figure([go.Scatter(x=xs, y=ys, name=n, mode="lines", line={"width": 4 if n == "random" else 2})
                         for n, ys in means.items()])
        fig.update_layout(xaxis_title="minutes", yaxis_title="hypervolume (test accuracy x MACs)")
        out = path.with_suffix(".html")
        fig.write_html(out, include_plotlyjs=True)
        return out
    fig, ax = plt.subplots(figsize=(8, 5))
    for n, ys in means.items():
        ax.step(xs, ys, where="post", label=n, linewidth=3 if n == "random" else 1.5,
                color="black" if n == "random" else None)
    ax.set_xlabel("minutes of wall-clock (one-shot search included)")
    ax.set_ylabel("hypervolume of (1 - test acc, MACs / 31,750), mean over seeds")
    ax.set_title("MNIST-1D, mnist1d_vs_paper space and budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    out = path.with_suffix(".png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def budget_text(budget: dict[str, float]) -> str:
    """``"20 min"``, or ``"600 s (darts 900 s)"`` when strategies got different wall-clocks."""
    common = statistics.mode(budget.values())
    text = f"{common / 60:g} min" if common % 60 == 0 else f"{common:g} s"
    other = [f"{n} {s:g} s" for n, s in budget.items() if s != common]
    return text + (f" ({', '.join(other)})" if other else "")


def seeds_text(settings: dict) -> str:
    """``"seeds [0, 1, 2]"``, with the strategies that ran other seeds named."""
    other = {n: k for n, k in settings.get("seeds_by", {}).items() if k != settings["seeds"]}
    return f"seeds {settings['seeds']}" + "".join(f"; {n}: {k}" for n, k in other.items())


def markdown(doc: dict) -> str:
    s = doc["settings"]
    lines = [
        "# Search strategies on MNIST-1D (mnist1d_vs_paper space and budget), equal wall-clock", "",
        f"Command: `{doc['command']}`. {budget_text(s['budget_s'])} per strategy and seed ({seeds_text(s)}), "
        f"{s['workers']} worker processes of one PyTorch thread each, budget {', '.join(s['budget'])}. "
        "Hypervolume of (1 - accuracy, MACs / 31,750) up to (1, 1) of the front chosen on validation data, "
        "with validation accuracy and with the test accuracy of the same models. 's to first trial' includes "
        "a one-shot strategy's search (DARTS's supernet) and the run's set-up."
        + "".join(f" `{n}` ran with `strategy.options` {json.dumps(o)}." for n, o in s.get("options", {}).items()), "",
        *([f"Runs taken from {', '.join(f'`{p}`' for p in s['reused']['paths'])}, not run again: " + "; ".join(
            f"measured at commit {g['commit']} ({g['date']}): {', '.join(g['runs'])}"
            for g in s["reused"]["measured_at"]) + ".", ""] if s.get("reused") else []),
        "| strategy | seeds | trials (mean) | hypervolume, val | hypervolume, test | best test acc | s to first trial |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in doc["summary"]["table"].items():
        if "refused" in row:
            lines.append(f"| {name} | - | - | refused: {row['refused']} | | | |")
            continue
        shot = "-" if row["first_trial_seconds"] is None else f"{row['first_trial_seconds']:.0f}"
        lines.append(f"| {name} | {len(row['seeds'])} | {row['n_complete']:.0f} | {row['hv_val']:.4f} ± "
                     f"{row['hv_val_sd']:.4f} | {row['hv_test']:.4f} ± {row['hv_test_sd']:.4f} | "
                     f"{_num(row['best_test_accuracy'], '.3f')} | {shot} |")
    lines += ["", "## Targets", ""]
    for c in doc["summary"]["checks"]:
        met = c["met"] if isinstance(c["met"], str) else ("met" if c["met"] else "missed")
        extra = ""
        if "strategy" in c:
            extra = (f": {c['strategy'][0]:.4f} / {c['strategy'][1]:.4f} vs random {c['random'][0]:.4f} / "
                     f"{c['random'][1]:.4f} (val / test)")
        lines.append(f"- [{'x' if c['met'] is True else ' '}] {c['target']} — {met}{extra}")
    lines += ["", f"Plot: `{doc['plot']}`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.commit = package_state()["commit"]  # the code this process loaded, for every run it measures
    torch.set_num_threads(1)
    raw = yaml.safe_load(args.config.read_text())
    budget = [Budget.parse(b) for b in raw["budget"]]
    limit = min(b.limit for b in budget if b.metric == "macs" and b.op in ("<=", "<"))
    d = raw.get("data", {})
    data = load_dataset(d.get("dataset", "mnist1d"), val_fraction=d.get("val_fraction", 0.2), seed=d.get("seed", 0))
    keep = args.work is not None
    args.work = args.work or Path(tempfile.mkdtemp(prefix="slimnas-strategies-"))
    stored, reused = reused_runs(args.reuse, args)
    runs = []
    t0 = time.perf_counter()
    for name in args.names:
        for seed in args.seeds_by[name]:
            runs.append(stored.get((name, seed)) or run_one(args, name, seed, raw, data, limit, budget))
    doc = {
        "benchmark": NAME,
        "command": " ".join(["python", "benchmarks/strategies_mnist1d.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": utc_now(),
        "package": package_state(),
        "settings": {"budget_s": args.budget, "seeds": args.seeds, "seeds_by": args.seeds_by, "options": args.options, "strategies": args.names, "workers": args.workers,
                     "quick": args.quick, "config": str(args.config), "budget": [str(b) for b in budget],
                     "work": str(args.work) if keep else None, "total_seconds": round(time.perf_counter() - t0, 1),
                     "reused": reused or None},
        "summary": summarize(runs, args),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"{NAME}_quick" if args.quick else NAME
    doc["plot"] = str(plot(runs, max(args.budget.values()), args.out / name).name)
    doc["runs"] = [{k: v for k, v in r.items() if k != "timeline"} for r in runs]
    (args.out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (args.out / f"{name}.md").write_text(markdown(doc))
    print(markdown(doc))
    if not keep:
        shutil.rmtree(args.work, ignore_errors=True)
    return doc


if __name__ == "__main__":
    main()
