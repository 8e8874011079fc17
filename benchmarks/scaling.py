"""Scaling and crash safety of ``slimnas search`` on this machine, through the command line.

1. Throughput: the same search (MNIST-1D, a small CNN/MLP space, random strategy, one PyTorch
   thread per process) for the same wall-clock window with ``--workers 1`` and ``--workers 2``;
   trials per hour counted from the study's own completion times inside the window. Target on a
   2-core machine: 2 workers >= 1.7 x one. Measured at two trial lengths: short trials (8 epochs,
   under a second each, so the study's storage is a large share of each trial) and typical ones
   (40 epochs, a few seconds each); the target is checked on the typical ones.
2. Kill and restart: a 2-worker search killed with ``kill -9`` in the middle (its workers stop with
   it), then the same command again. Target: 0 completed trials lost (every trial complete before
   the kill is still complete after, with the same objective values, the same files byte for byte,
   and the same metrics; the final front may only add its test accuracy to its members), the study
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
from _common import package_state, write_results  # benchmarks/ is on sys.path when run as a script

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


TRIAL_LENGTHS = {"short": 8, "typical": 40}  # epochs per trial


def search(cfg: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimnas", "search", str(cfg), "--out", str(out), "--quiet",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="scaling", storage=f"sqlite:///{out / 'study.db'}")


def throughput(cfg: Path, work: Path, workers: int, seconds: float) -> dict:
    """Trials completed per hour in a window of ``seconds`` (from the study's completion times)."""
    out = work / f"{cfg.stem}-workers{workers}"
    t0 = dt.datetime.now()
    proc = search(cfg, out, "--workers", str(workers), "--timeout", str(seconds), "--n-trials", "100000")
    _, err = proc.communicate(timeout=seconds + 600)
    assert proc.returncode == 0, err
    end = t0 + dt.timedelta(seconds=seconds)
    done = [t for t in load(out).trials if t.state.name == "COMPLETE" and t.datetime_complete <= end]
    return {"workers": workers, "seconds": seconds, "trials": len(done),
            "trials_per_hour": round(len(done) * 3600 / seconds, 1)}


#: what the final front adds to its members' metrics.json (the test set is read once, at the end)
ADDED_AT_THE_END = {"test_accuracy"}


def artifacts(out: Path, number: int) -> tuple[str, dict]:
    """A trial's files: a digest of every file but metrics.json, and metrics.json's content."""
    folder = out / "trials" / f"{number:05d}"
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and p.name != "metrics.json"]
    metrics = json.loads((folder / "metrics.json").read_text())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest(), metrics


def unchanged(before: tuple[str, dict], after: tuple[str, dict]) -> bool:
    """The same files and metrics, but for what the final front adds."""
    (digest0, metrics0), (digest1, metrics1) = before, after
    return digest0 == digest1 and metrics0 == {k: v for k, v in metrics1.items()
                                               if k not in ADDED_AT_THE_END or k in metrics0}


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
            if after[n].state.name != "COMPLETE" or after[n].values != values
            or not unchanged(digest, artifacts(out, n))]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    return {"n_trials": n_trials, "complete_at_kill": len(before), "running_at_kill": running_at_kill,
            "lost": lost, "complete_after_restart": len(complete),
            "running_after_restart": sum(1 for t in trials if t.state.name == "RUNNING"),
            "failed_and_rerun": sum(1 for t in trials if t.state.name == "FAIL"),
            "duplicate_numbers": len(complete) - len({t.number for t in complete}),
            "stale_temp_files": len(list(out.rglob("*.tmp")))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="throughput window per worker count and length")
    ap.add_argument("--n-trials", type=int, default=24, help="trials of the kill-and-restart search")
    ap.add_argument("--quick", action="store_true", help="smoke run: a 30 s window, 8 trials")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.n_trials = 30.0, 8
    work = Path(tempfile.mkdtemp(prefix="slimnas-scaling-"))
    t0 = time.time()
    lengths = {}
    for length, epochs in TRIAL_LENGTHS.items():
        cfg = work / f"{length}.yaml"
        cfg.write_text(yaml.safe_dump({**CONFIG, "training": {**CONFIG["training"], "epochs": epochs}}))
        one = throughput(cfg, work, 1, args.seconds)
        two = throughput(cfg, work, 2, args.seconds)
        lengths[length] = {"epochs": epochs, "one_worker": one, "two_workers": two,
                           "seconds_per_trial": round(args.seconds / max(one["trials"], 1), 2),
                           "speedup": round(two["trials_per_hour"] / max(one["trials_per_hour"], 1e-9), 3)}
    kill = kill_and_restart(work / "short.yaml", work, args.n_trials, kill_after=args.n_trials // 3)
    speedup = lengths["typical"]["speedup"]
    result = {
        "package": package_state(), "cpus": os.cpu_count(), "settings": {**vars(args), "out": str(args.out)},
        "config": CONFIG, "trial_lengths": lengths, "speedup": speedup, "kill_restart": kill,
        "checks": {"2 workers >= 1.7 x one (typical trials)": speedup >= 1.7,
                   "0 completed trials lost to kill -9": not kill["lost"],
                   "restart finishes the study, nothing left running, no duplicates":
                       kill["complete_after_restart"] >= kill["n_trials"] and not kill["running_after_restart"]
                       and not kill["duplicate_numbers"]},
        "seconds": round(time.time() - t0, 1),
    }
    write_results(args.out, "scaling_quick" if args.quick else "scaling", result, markdown(result))
    return result


def markdown(r: dict) -> str:
    k = r["kill_restart"]
    lines = [
        "# Scaling and crash safety of `slimnas search`", "",
        f"{r['cpus']} CPUs; MNIST-1D, random search over small CNNs/MLPs, one PyTorch thread per process; "
        "trials counted from the study's completion times.", "",
        "| trials | epochs | s per trial (1 worker) | workers | window s | trials completed | trials / hour "
        "| speed-up |", "|---|---|---|---|---|---|---|---|",
        *(f"| {name} | {n['epochs']} | {n['seconds_per_trial']} | {w['workers']} | {w['seconds']:.0f} | {w['trials']} "
          f"| {w['trials_per_hour']:.0f} | {n['speedup'] if w['workers'] == 2 else 1.0:.2f}x |"
          for name, n in r["trial_lengths"].items() for w in (n["one_worker"], n["two_workers"])),
        "", f"Speed-up of 2 workers over 1 on typical trials: **{r['speedup']:.2f}x** (target >= 1.7); on short "
        f"trials, where the study's storage is a large share of each trial: "
        f"{r['trial_lengths']['short']['speedup']:.2f}x.", "",
        f"Kill -9 of a 2-worker search (short trials) after {k['complete_at_kill']} of {k['n_trials']} trials "
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
