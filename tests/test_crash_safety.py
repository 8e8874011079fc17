"""Crash safety: kill -9 and restart, Ctrl-C, failing trials, workers whose parent dies. Real
processes, a real SQLite study, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
import yaml

import slimnas

TINY = {
    "data": {"dataset": "digits"},
    "space": {"family": ["cnn", "mlp"],
              "cnn": {"n_layers": {"low": 1, "high": 2}, "channels": [4, 8], "kernel": [3, 5], "stride": [2],
                      "residual": [False, True], "head": ["gap", "flatten"]},
              "mlp": {"n_layers": 1, "width": [8, 16]}},
    "training": {"epochs": 3, "lr": {"low": 0.003, "high": 0.03, "log": True}, "optimizer": "adam"},
    "strategy": {"name": "tpe", "n_startup_trials": 3},
    "seed": 4,
}


def cli(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "slimnas", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def wait_for(predicate, timeout: float = 300.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def front_key(result) -> list:
    return sorted((json.dumps(m.candidate, sort_keys=True), round(m.metrics["val_accuracy"], 6),
                   m.metrics["macs"]) for m in result.front)


def test_kill_9_mid_trial_then_resume_loses_nothing_and_ends_as_an_uninterrupted_run(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "epochs": 6}}))
    out, n = tmp_path / "killed", 8
    proc = cli("search", str(cfg), "--n-trials", str(n), "--out", str(out), "--quiet")
    trial3 = out / "trials" / "00003"
    wait_for(lambda: (trial3 / "arch.json").exists())
    proc.send_signal(signal.SIGKILL)  # as trial 3 starts training: no handler runs
    proc.communicate(timeout=60)
    study = optuna.load_study(study_name="digits-tpe", storage=f"sqlite:///{out / 'study.db'}")
    running = [t.number for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert running == [3], [t.state for t in study.trials]
    completed = {t.number: t.user_attrs["metrics"]["seconds"] for t in study.trials if t.state.name == "COMPLETE"}

    resumed = slimnas.search(cfg, n_trials=n, out=str(out))  # the same command again
    trials = resumed.study.trials
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    killed = trials[3]
    assert killed.state == optuna.trial.TrialState.FAIL and "stopped" in killed.user_attrs["failure"]
    assert json.loads((trial3 / "metrics.json").read_text())["state"] == "failed"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 3]
    assert len(retried) == 1 and retried[0].params == killed.params and retried[0].state.name == "COMPLETE"
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == n and len({t.number for t in done}) == n
    for number, seconds in completed.items():  # completed trials were kept, not re-run
        assert trials[number].user_attrs["metrics"]["seconds"] == seconds
    assert not list(out.rglob("*.tmp"))
    assert resumed.failed == []  # the killed trial was re-run, so nothing is missing

    uninterrupted = slimnas.search(cfg, n_trials=n, out=str(tmp_path / "straight"))
    assert front_key(resumed) == front_key(uninterrupted)


def test_resumed_search_continues_its_sequence(tmp_path, tiny_config):
    cfg = tiny_config(strategy={"name": "tpe", "n_startup_trials": 2})
    slimnas.search(cfg, n_trials=3, seed=2, out=str(tmp_path / "a"))
    resumed = slimnas.search(cfg, n_trials=6, seed=2, out=str(tmp_path / "a"))
    straight = slimnas.search(cfg, n_trials=6, seed=2, out=str(tmp_path / "b"))
    params = [t.params for t in resumed.study.trials]
    assert params == [t.params for t in straight.study.trials]
    assert params[3:] != params[:3]  # not the first three again


def test_ctrl_c_re_runs_the_interrupted_candidate_first(tmp_path):
    cfg = tmp_path / "c.yaml"
    # 1000 epochs: trial 1 trains for seconds, so a signal 0.5 s after it starts lands inside its
    # training (at 30 epochs a tiny candidate ends in 0.2 s, and a signal between trials or in a
    # measurement lets the trial finish, as it should); trial 1, not 0, whose first second goes
    # to the process's one-time warm-up before training
    cfg.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "epochs": 1000}}))
    out = tmp_path / "c"
    proc = cli("search", str(cfg), "--n-trials", "4", "--out", str(out), "--quiet")
    wait_for(lambda: (out / "trials" / "00001" / "arch.json").exists())
    time.sleep(0.5)  # inside trial 1's training
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    study = optuna.load_study(study_name="digits-tpe", storage=f"sqlite:///{out / 'study.db'}")
    interrupted = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in interrupted] == [1] and "Ctrl-C" in interrupted[0].user_attrs["failure"]
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.params for t in waiting] == [interrupted[0].params]  # queued to run first on resume


def test_a_diverging_trial_fails_alone_and_the_search_goes_on(tmp_path):
    """The reproduction: SGD at lr 10 on MNIST-1D made one trial's loss NaN and the whole search
    end in an ExportMismatchError traceback, without pareto.json."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"epochs": 2, "strategy": {"name": "random"}, "space": {"family": ["mlp", "cnn"]},
                                   "training": {"optimizer": "sgd", "lr": 10}}))
    r = slimnas.search(cfg, n_trials=3, seed=2, out=str(tmp_path / "d"))
    states = [t.state.name for t in r.study.trials]
    assert "FAIL" in states and "COMPLETE" in states, states
    for number, reason in r.failed:
        assert "training diverged: the loss became nan" in reason, reason
        doc = json.loads((r.run_dir / "trials" / f"{number:05d}" / "metrics.json").read_text())
        assert doc["state"] == "failed" and doc["reason"] == reason
    pareto = json.loads(r.pareto_path.read_text())
    assert pareto["front"] and [f["trial"] for f in pareto["failed"]] == [n for n, _ in r.failed]


def test_training_that_turns_nan_says_so():
    from slimnas.errors import TrainingDiverged
    from slimnas.spaces import TrainSpec
    from slimnas.training import fit

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    with pytest.raises(TrainingDiverged, match="the loss became (nan|inf) at epoch 2"):
        fit(model, torch.randn(64, 1, 8), torch.randint(0, 3, (64,)), TrainSpec(optimizer="sgd", lr=float("inf"), epochs=3))


def test_every_trial_failing_exits_1_with_the_reason(tmp_path, tiny_config):
    p = cli("search", str(tiny_config()), "--n-trials", "2", "--trial-timeout", "0.000001",
            "--out", str(tmp_path / "e"), "--quiet")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1 and "Traceback" not in stderr, stderr
    flat = " ".join(stdout.split())
    assert "2 trial(s) failed" in flat and "time limit" in flat and "No trial completed" in flat
    assert (tmp_path / "e" / "pareto.json").is_file()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc for the worker processes")
def test_workers_report_their_trials_and_stop_when_the_main_process_dies(tmp_path, tiny_config, cli_here):
    cfg = tiny_config(training={"epochs": 2, "lr": 0.01, "optimizer": "adam"})
    # the main process in this one (its worker is a process of its own all the same); the kills
    # below are of real main processes
    r = cli_here("search", cfg, "--n-trials", "6", "--workers", "2", "--out", tmp_path / "w", "--quiet")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("trial ")]
    pareto = json.loads((tmp_path / "w" / "pareto.json").read_text())
    assert len(lines) == pareto["n_trials"] >= 6  # every worker's trial is printed by the main process

    cfg = tiny_config(training={"epochs": 200, "lr": 0.01, "optimizer": "adam"})
    # as started from a terminal, and in the background of a script (`slimnas search ... &`), where
    # the search and its workers inherit SIGINT ignored
    for k, ignore_sigint in (("k", False), ("k-bg", True)):
        proc = cli("search", str(cfg), "--n-trials", "50", "--workers", "2", "--out", str(tmp_path / k), "--quiet",
                   preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None)
        trials = tmp_path / k / "trials"
        wait_for(lambda trials=trials: trials.is_dir() and len(list(trials.glob("*"))) >= 2)
        children = [int(p) for p in (f"/proc/{proc.pid}/task/{proc.pid}/children",) for p in open(p).read().split()]
        workers = [c for c in children if "slimnas" in open(f"/proc/{c}/cmdline").read()
                   or "multiprocessing" in open(f"/proc/{c}/cmdline").read()]
        assert workers, children
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        deadline = time.time() + 60
        while any(os.path.exists(f"/proc/{w}") and "zombie" not in open(f"/proc/{w}/status").read().lower()
                  for w in workers) and time.time() < deadline:
            time.sleep(0.2)
        alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "zombie" not in open(f"/proc/{w}/status").read().lower()]
        assert not alive, f"workers {alive} ran on after the main process was killed"


def test_a_trial_failing_on_its_own_is_followed_by_another_candidate(tmp_path, tiny_config):
    """The report: a candidate that runs out of memory was proposed again by 10 of 12 TPE trials
    (6 of 6 random): a failed trial gave its place in the sequence to the next, which drew the
    same candidate from the same seed."""
    from slimnas.measure import BaseMetric, register_metric
    from slimnas.measure._metric import METRICS

    @register_metric("wide_oom_mb")
    class RunsOutOfMemoryWhenWide(BaseMetric):  # a stand-in for a candidate too big for the device
        unit, when = "MB", "model"

        def measure(self, ctx):
            if sum(p.numel() for p in ctx.model.parameters()) > 1500:
                raise torch.OutOfMemoryError("CUDA out of memory (the test's stand-in)")
            return 1.0

    try:
        cfg = tiny_config(space={"family": ["mlp"], "mlp": {"n_layers": 1, "width": [2, 64]}},
                          training={"epochs": 1, "lr": {"low": 0.001, "high": 0.03, "log": True}},
                          strategy={"name": "tpe", "n_startup_trials": 2})
        r = slimnas.search(cfg, n_trials=5, seed=0, budget=["wide_oom_mb<=10"], out=str(tmp_path / "f"))
    finally:
        METRICS.unregister("wide_oom_mb")
    trials = r.study.trials
    failed = [t.number for t in trials if t.state.name == "FAIL"]
    assert failed and all("out of memory" in trials[n].user_attrs["failure"] for n in failed)
    for n in failed:  # the trial after a failure proposes another candidate
        if n + 1 < len(trials):
            assert trials[n + 1].params != trials[n].params, [(t.number, t.state.name, t.params) for t in trials]
    assert sorted(n for n, _ in r.failed) == failed  # reported, not re-run


def test_the_trial_time_limit_stops_a_trial_inside_its_first_epoch(tmp_path, tiny_config):
    """The report: --trial-timeout was checked at the end of each epoch only, so a 100,000-layer
    MLP under a 30 s limit ran about 250 s. Here an epoch takes several times the limit: the
    trial fails inside it (no epoch is ever reported), and the search goes on."""
    from slimnas.study import Listener

    class Heard(Listener):
        def __init__(self):
            self.epochs = []

        def epoch_ended(self, number, epoch, metrics):
            self.epochs.append((number, epoch))

    heard = Heard()
    cfg = tiny_config(space={"family": ["mlp"], "mlp": {"n_layers": 24, "width": [1024]}},
                      training={"epochs": 3, "lr": 0.001, "optimizer": "adam"})
    r = slimnas.search(cfg, n_trials=1, trial_timeout=0.5, out=str(tmp_path / "t"), listener=heard)
    assert [t.state.name for t in r.study.trials] == ["FAIL"]
    reason = r.study.trials[0].user_attrs["failure"]
    assert "time limit of 0.5 s" in reason and "at epoch" not in reason, reason
    assert heard.epochs == []  # stopped inside the first epoch, not after it
    doc = json.loads((r.run_dir / "trials" / "00000" / "metrics.json").read_text())
    assert doc["state"] == "failed" and doc["reason"] == reason


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the trial is asked for, as another machine would
def test_a_trial_whose_heartbeat_went_silent_on_another_machine_is_waited_out_then_failed_and_re_run(tmp_path):
    """The last process to finish waits out the heartbeat grace for a trial of a process on
    another machine that stopped beating, then fails it and queues its candidate again."""
    import sqlalchemy

    from slimnas.study._driver import GRACE_S, make_storage, settle_dead_workers

    url = f"sqlite:///{tmp_path / 'hb.db'}"
    study = optuna.create_study(storage=make_storage(url), study_name="hb")
    trial = study.ask()
    trial.suggest_int("width", 1, 64)
    trial.set_user_attr("worker", {"host": "another-machine", "pid": 1})
    study._storage.record_heartbeat(trial._trial_id)
    engine = sqlalchemy.create_engine(url)

    def silent_for(seconds: float) -> None:  # its last beat, as long ago as the other machine died
        with engine.begin() as c:
            c.execute(sqlalchemy.text("UPDATE trial_heartbeats SET heartbeat = datetime('now', :ago)"),
                      {"ago": f"-{seconds} seconds"})

    silent_for(GRACE_S / 2)
    notes, waited = [], []
    settled = settle_dead_workers(study, 4, note=notes.append,
                                  sleep=lambda s: (waited.append(s), silent_for(GRACE_S + 5)))
    assert waited and "waiting" in notes[0] and f"trial(s) {trial.number}" in notes[0], notes
    assert settled == [(trial.number, True)]
    trials = study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL and "its process stopped" in trials[0].user_attrs["failure"]
    assert [t.params for t in trials if t.state == optuna.trial.TrialState.WAITING] == [trials[0].params]
