"""The joint and supernet routes of ``benchmarks/joint_vs_sequential.py``, trial by trial, at
this commit against an earlier one: the check that a restructure left their figures unchanged.

The timed benchmark cannot show that: it stops each search by wall-clock, so the number of
trials (and with it every figure) follows the machine's load. This one gives both routes a
trial count instead (one worker, one thread, shortened training), runs them on both commits'
code in separate processes, and compares every trial's measured figures (validation accuracy,
MACs, parameters, bytes, precision) and every front member's test accuracy. Wall-clock figures
(latency, seconds) are left out of the comparison: they are noise, not results.

Usage: ``python benchmarks/route_equivalence.py --base eb89a9d`` (the base commit is checked out
in a temporary git worktree, removed afterwards). Writes
``benchmarks/results/route_equivalence.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import REPO, commit_label, package_state, write_results  # benchmarks/ is on sys.path

ROUTES = {"joint": 12, "supernet": 10}  # trials per route


def _numbers(attrs: dict) -> dict:
    """The measured figures of a trial, without its wall-clock ones."""
    return {k: v for k, v in attrs.items()
            if isinstance(v, (int, float, str)) and not any(s in k for s in ("latency", "time", "seconds"))
            and not k.endswith("_s")}


def run_routes(tree: Path, out: Path) -> dict:
    """Both routes on ``tree``'s code (this process imports that tree's ``slimnas``)."""
    import yaml

    import slimnas

    sys.path.insert(0, str(tree / "benchmarks"))
    spec = importlib.util.spec_from_file_location("jvs", tree / "benchmarks/joint_vs_sequential.py")
    jvs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jvs)
    raw = yaml.safe_load((tree / "benchmarks/configs/joint_mnist1d.yaml").read_text())
    raw["training"]["epochs"] = 4
    raw["space"]["compression"].update(finetune_epochs=1, final_epochs=2)
    result = {}
    for route, n_trials in ROUTES.items():
        cfg = copy.deepcopy(raw) if route == "joint" else jvs.supernet_config(raw, True)
        cfg["n_trials"], cfg["n_workers"] = n_trials, 1
        path = out / f"{route}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = slimnas.search(path, out=str(out / route))
        trials = [{"trial": t.number, "state": str(t.state), "values": t.values, **_numbers(t.user_attrs)}
                  for t in res.study.trials]
        result[route] = {"trials": trials, "front": jvs.front_points(res)}
    return result


def side(tree: Path, work: Path) -> dict:
    """``run_routes`` in a fresh process with ``tree`` first on the path."""
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, __file__, "--side", str(tree), "--work", str(work)], env=env, check=True,
                   cwd=work)
    return json.loads((work / "figures.json").read_text())


def compare(base: dict, head: dict) -> dict:
    rows = {}
    for route in ROUTES:
        a, b = base[route]["trials"], head[route]["trials"]
        differing = [x["trial"] for x, y in zip(a, b, strict=False) if x != y]
        differing += list(range(min(len(a), len(b)), max(len(a), len(b))))  # trials only one side ran
        rows[route] = {"trials": len(b), "differing_trials": differing,
                       "front_identical": base[route]["front"] == head[route]["front"],
                       "front": [{k: m[k] for k in ("trial", "val_accuracy", "test_accuracy", "macs", "bytes")}
                                 for m in head[route]["front"]]}
    return rows


def markdown(doc: dict) -> str:
    lines = ["# The joint and supernet routes, trial by trial, against an earlier commit", "",
             f"Commit {commit_label(doc['package'])} against {doc['base']} ({doc['package']['date']}). "
             "Both routes of `benchmarks/joint_vs_sequential.py` with a trial count instead of a "
             "timeout (one worker, one thread, 4 training epochs, 1 fine-tune and 2 final epochs), each "
             "commit's code in its own process; every trial's measured figures compared (wall-clock "
             "ones left out).", "",
             "| route | trials | trials with any figure different | front identical |", "|---|---|---|---|"]
    for route, row in doc["routes"].items():
        lines.append(f"| {route} | {row['trials']} | {len(row['differing_trials'])} | "
                     f"{'yes' if row['front_identical'] else 'no'} |")
    for route, row in doc["routes"].items():
        lines += ["", f"Front of the {route} route (both commits):", "",
                  "| trial | val accuracy | test accuracy | MACs | bytes |", "|---|---|---|---|---|"]
        lines += [f"| {m['trial']} | {m['val_accuracy']:.4f} | {m['test_accuracy']:.3f} | {m['macs']:,} | "
                  f"{m['bytes']:,} |" for m in row["front"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="eb89a9d", help="the earlier commit")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--side", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:  # one commit's routes, in this process
        (args.work / "figures.json").write_text(json.dumps(run_routes(args.side, args.work), default=str))
        return
    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(base_tree), args.base], cwd=REPO, check=True)
        try:
            base = side(base_tree, Path(tmp) / "run-base")
            head = side(REPO, Path(tmp) / "run-head")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO, check=False)
    base_commit = subprocess.run(["git", "rev-parse", args.base], cwd=REPO, capture_output=True, text=True).stdout
    doc = {"package": package_state(), "base": base_commit.strip(), "routes": compare(base, head)}
    write_results(args.out, "route_equivalence", doc, markdown(doc))


if __name__ == "__main__":
    main()
