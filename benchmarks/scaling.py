"""Scaling and crash safety of ``slimnas search`` on this machine, through the command line.

1. Throughput: the same search (MNIST-1D, a small CNN/MLP space, random strategy, one PyTorch
   thread per process) for the same wall-clock window with ``--workers 1`` and ``--workers 2``;
   trials per hour counted from the study's own completion times inside the window. Target on a
   2-core machine: 2 workers >= 1.7 x one.
2. Kill and restart: a 2-worker search killed with ``kill -9`` in the middle (its workers stop with
   it), then the same command again. Target: 0 completed trials lost (every trial complete before
   the kill is still complete after, with the same metrics and untouched files), the study
   finishes at ``--n-trials``, no trial left running, no duplicate.

Writes ``benchmarks/results/scaling.{json,md}``.

Usage: ``python benchmarks/scaling.py [--seconds 240] [--quick]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from _common import package_state  # benchmarks/ is on sys.path when run as a script

RESULTS = Path(__file__).parent / "results"
CONFIG = {
    "name": "scaling",
    "seed": 0,
    "data": {"dataset": "mnist1d"},
    "objectives": ["accuracy", "macs"],
    "strategy": {"name": "random"},
    "threads": 1,
    "space": {"family": ["cnn", "mlp"],
              "cnn": {"n_layers": {"low": 2, "high": 3}, "channels": [8, 16], "kernel": [3, 5], "stride": [2]},
              "mlp": {"n_layers": {"low": 1, "high": 2}, "width": [32, 64]}},
    "training": {"epochs": 8, "lr": 0.01, "optimizer": "adam"},
}


def search(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimnas", "search", str(cfg), "--out", str(out), "--quiet",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="scaling", storage=f"sqlite:///{out / 'study.db'}")


def throughput(cfg: Path, work: Path, workers: int, seconds: float) -> dict:
    """Trials completed per hour in a window of ``seconds`` (from the study's completion times)."""
    out = work / f"workers{workers}"
    t0 = dt.datetime.now()
    proc = search(cfg, out, "--workers", str(workers), "--timeout", str(seconds), "--n-trials", "100000")
    _, err = proc.communicate(timeout=seconds + 600)
    assert proc.returncode == 0, err
    end = t0 + dt.timedelta(seconds=seconds)
    done = [t for t in load(out).trials if t.state.name == "COMPLETE" and t.datetime_complete <= end]
    return {"workers": workers, "seconds": seconds, "trials": len(done),
            "trials_per_hour": round(len(done) * 3600 / seconds, 1)}


def artifacts(out: Path, number: int) -> str:
    folder = out / "trials" / f"{number:05d}"
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())).hexdigest()


def kill_and_restart(cfg: Path, work: Path, n_trials: int, kill_after: int) -> dict:
    out = work / "killed"
    proc = search(cfg, out, "--workers", "2", "--n-trials", str(n_trials))
    deadline = time.time() + 1800
    while time.time() < deadline:
        done = []
        if (out / "study.db").is_file():  # opening a missing database would create it
            try:
                done = [t for t in load(out).trials if t.state.name == "COMPLETE"]
            except KeyError:  # the database file exists before the study is written into it
                pass
        if len(done) >= kill_after:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    time.sleep(3)  # the workers notice their parent is gone
    before = {t.number: (t.values, artifacts(out, t.number)) for t in load(out).trials if t.state.name == "COMPLETE"}
    running_at_kill = sum(1 for t in load(out).trials if t.state.name == "RUNNING")
    restart = search(cfg, out, "--workers", "2", "--n-trials", str(n_trials))
    _, err = restart.communicate(timeout=3600)
    assert restart.returncode == 0, err
    trials = load(out).trials
    after = {t.number: t for t in trials}
    lost = [n for n, (values, digest) in before.items()
            if after[n].state.name != "COMPLETE" or after[n].values != values or artifacts(out, n) != digest]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    return {"n_trials": n_trials, "complete_at_kill": len(before), "running_at_kill": running_at_kill,
            "lost": lost, "complete_after_restart": len(complete),
            "running_after_restart": sum(1 for t in trials if t.state.name == "RUNNING"),
            "failed_and_rerun": sum(1 for t in trials if t.state.name == "FAIL"),
            "duplicate_numbers": len(complete) - len({t.number for t in complete}),
            "stale_temp_files": len(list(out.rglob("*.tmp")))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=240.0, help="throughput window per worker count")
    ap.add_argument("--n-trials", type=int, default=24, help="trials of the kill-and-restart search")
    ap.add_argument("--quick", action="store_true", help="smoke run: a 30 s window, 8 trials")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.n_trials = 30.0, 8
    work = Path(tempfile.mkdtemp(prefix="slimnas-scaling-"))
    cfg = work / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    t0 = time.time()
    one = throughput(cfg, work, 1, args.seconds)
    two = throughput(cfg, work, 2, args.seconds)
    speedup = two["trials_per_hour"] / max(one["trials_per_hour"], 1e-9)
    kill = kill_and_restart(cfg, work, args.n_trials, kill_after=args.n_trials // 3)
    result = {
        "package": package_state(), "cpus": os.cpu_count(), "settings": {**vars(args), "out": str(args.out)},
        "config": CONFIG, "one_worker": one, "two_workers": two, "speedup": round(speedup, 3), "kill_restart": kill,
        "checks": {"2 workers >= 1.7 x one": speedup >= 1.7,
                   "0 completed trials lost to kill -9": not kill["lost"],
                   "restart finishes the study, nothing left running, no duplicates":
                       kill["complete_after_restart"] >= kill["n_trials"] and not kill["running_after_restart"]
                       and not kill["duplicate_numbers"]},
        "seconds": round(time.time() - t0, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "scaling_quick" if args.quick else "scaling"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(r: dict) -> str:
    k = r["kill_restart"]
    lines = [
        "# Scaling and crash safety of `slimnas search`", "",
        f"{r['cpus']} CPUs; MNIST-1D, random search over small CNNs/MLPs ({r['config']['training']['epochs']} epochs "
        "each), one PyTorch thread per process; trials counted from the study's completion times.", "",
        "| workers | window s | trials completed | trials / hour |", "|---|---|---|---|",
        *(f"| {w['workers']} | {w['seconds']:.0f} | {w['trials']} | {w['trials_per_hour']:.0f} |"
          for w in (r["one_worker"], r["two_workers"])),
        "", f"Speed-up of 2 workers over 1: **{r['speedup']:.2f}x** (target >= 1.7).", "",
        f"Kill -9 of a 2-worker search after {k['complete_at_kill']} of {k['n_trials']} trials "
        f"({k['running_at_kill']} running), then the same command: **{len(k['lost'])} completed trials lost**; "
        f"{k['complete_after_restart']} complete after the restart, {k['running_after_restart']} left running, "
        f"{k['failed_and_rerun']} failed (killed in flight) and re-run, {k['duplicate_numbers']} duplicates, "
        f"{k['stale_temp_files']} stale temporary files.", "",
        *(f"- [{'x' if ok else ' '}] {name}" for name, ok in r["checks"].items()),
        "", f"Settings: {r['settings']}; run took {r['seconds']} s at {r['package']}.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
