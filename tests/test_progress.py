"""Search progress: the time to go (a pure function of trial durations), the console's live and
plain views of it, and TensorBoard event files written by a listener."""

from __future__ import annotations

import io
import math
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

import slimnas
from slimnas.cli import ConsoleListener, build_app
from slimnas.cli._progress import format_duration
from slimnas.errors import ConfigError
from slimnas.report._data import report_data
from slimnas.study import Listener, ListenerGroup, TensorBoardListener, estimate_eta


def test_eta_is_the_median_trial_time_times_the_trials_left_over_the_workers():
    assert estimate_eta([], 5) is None  # nothing finished yet: nothing to estimate from
    assert estimate_eta([10.0], 0) == 0.0
    assert estimate_eta([10, 20, 1000], 4) == 80  # the median: one slow trial does not dominate
    assert estimate_eta([10.0], 6, workers=3) == 20
    assert estimate_eta([10.0], 1, workers=4) == 10  # the last trial runs on one worker however many there are
    # what the running trials have done already is not to go; one past the median is nearly done
    assert estimate_eta([10.0], 2, running=[4.0]) == 16
    assert estimate_eta([10.0], 2, running=[25.0]) == 10


def test_eta_ends_at_the_timeout_when_that_comes_first():
    assert estimate_eta([10.0], 100, elapsed=30, timeout=60) == 30
    assert estimate_eta([10.0], 2, elapsed=30, timeout=60) == 20  # the trials end first
    # past the timeout no trial starts: what is left is the least advanced running trial's rest
    assert estimate_eta([10.0], 100, elapsed=70, timeout=60, running=[4.0, 8.0]) == 6
    assert estimate_eta([10.0], 100, elapsed=70, timeout=60) == 0


def test_format_duration():
    assert [format_duration(s) for s in (None, 4.24, 65, 3599.6, 7620)] == ["?", "4.2s", "1m05s", "1h00m", "2h07m"]


def _search_info(**extra) -> dict:
    info = {"kind": "search", "study": "s", "data": "digits", "n_done": 2, "n_todo": 4, "n_total": 6,
            "strategy": "tpe", "objectives": ["accuracy", "macs"], "budget": [], "run_dir": "runs/s", "n_workers": 2,
            "timeout": None,
            "trials": [{"trial": 0, "state": "complete", "feasible": True, "completed": "2026-01-01T00:00:00",
                        "metrics": {"val_accuracy": 0.4, "macs": 10, "seconds": 10.0}},
                       {"trial": 1, "state": "complete", "feasible": True, "completed": "2026-01-01T00:00:10",
                        "metrics": {"val_accuracy": 0.6, "macs": 20, "seconds": 30.0}}]}
    return {**info, **extra}


def test_plain_output_gives_each_trial_its_place_and_the_time_to_go_of_a_resumed_search():
    out = io.StringIO()
    listener = ConsoleListener(Console(file=out, width=120))
    assert not listener.live  # not a terminal: no live display, the lines say it all
    listener.started(_search_info())
    # a resumed study's earlier trials give an estimate before any new trial ends: median 20 s x 4 / 2 workers
    assert listener.eta(now=listener.t_start) == 40
    listener.trial_finished(2, "complete", {"val_accuracy": 0.5, "macs": 100}, 20.0)
    listener.trial_finished(3, "failed", {"reason": "diverged"}, 5.0)  # does not count towards the total
    listener.trial_finished(4, "over budget", {"val_accuracy": 0.9, "macs": 10**6}, 40.0)
    lines = [ln for ln in out.getvalue().splitlines() if ln.startswith("trial ")]
    assert lines[0].endswith("20.0s  [3/6, eta 30.0s]")  # median of 10, 30, 20 s x 3 left / 2 workers
    assert "failed" in lines[1] and "[" not in lines[1]
    assert lines[2].endswith("[4/6, eta 25.0s]")
    assert listener.best == 0.6  # the best feasible accuracy: the over-budget 0.9 does not count


def test_live_display_shows_the_time_to_go_and_the_best_so_far_on_a_terminal():
    out = io.StringIO()
    with ConsoleListener(Console(file=out, width=120, force_terminal=True)) as listener:
        assert listener.live
        listener.started(_search_info(n_workers=1))
        listener.trial_started(2, 3)
        listener.epoch_ended(2, 1, {"train_loss": 1.0})
        listener.trial_finished(2, "complete", {"val_accuracy": 0.7, "macs": 100}, 20.0)
        text = listener._extra(listener.progress.tasks[listener.trials])
        assert text.startswith("eta ") and text.endswith("best val_acc 0.700")
        listener.phase_started("train", {"label": "training the input model", "epochs": 2})
        listener.phase_epoch("train", 1, 2, {"val_accuracy": 0.5})
        listener.phase_finished("train", {"label": "training the input model", "epochs": 2}, 1.5)
        assert len(listener.progress.tasks) == 1  # the trial's and the phase's rows are gone; the trials' remains
    assert "training the input model: done in 1.5s; val_acc 0.500 at epoch 1" in out.getvalue()


def test_a_listener_group_passes_every_event_to_each_member():
    class Count(Listener):
        def __init__(self):
            self.calls = []

        def trial_finished(self, number, state, metrics, seconds):
            self.calls.append(number)

        def phase_started(self, phase, info):
            self.calls.append(phase)

    a, b = Count(), Count()
    group = ListenerGroup(a, None, b)
    group.trial_finished(3, "complete", {}, 1.0)
    group.phase_started("load", {})
    group.note("ignored by both")
    assert a.calls == b.calls == [3, "load"]


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_logs_trial_curves_final_metrics_and_study_progress(tmp_path, tiny_config):
    run = tmp_path / "r"
    r = CliRunner().invoke(build_app(), ["search", str(tiny_config()), "--n-trials", "3", "--out", str(run),
                                         "--tensorboard"])
    assert r.exit_code == 0, r.output
    assert "[3/3]" in r.output and "[1/3, eta " in r.output  # plain output: each trial's place, the time to go
    board = run / "tensorboard"
    top = _scalars(board)
    assert {"trial/val_accuracy", "trial/macs", "trial/params", "trial/seconds", "study/best_accuracy",
            "study/hypervolume"} <= set(top)
    assert [s for s, _ in top["trial/val_accuracy"]] == [0, 1, 2]
    assert [s for s, _ in top["study/hypervolume"]] == [1, 2, 3]
    best = [v for _, v in top["study/best_accuracy"]]
    assert best == sorted(best)  # best so far never falls
    points = report_data(run)["progress"]["points"]  # the report's figures: the same at the last trial
    assert math.isclose(top["study/hypervolume"][-1][1], points[-1]["hypervolume"], rel_tol=1e-6)
    assert math.isclose(best[-1], points[-1]["best"], rel_tol=1e-6)
    for n in range(3):  # each trial's training curves, one epoch here
        curves = _scalars(board / f"trial_{n:05d}")
        assert [s for s, _ in curves["train/loss"]] == [1] and [s for s, _ in curves["val/accuracy"]] == [1]

    # resumed, from the config's switch: the study's curves continue where they stopped
    slimnas.search(tiny_config(tensorboard=True), n_trials=4, out=str(run))
    top = _scalars(board)
    assert [s for s, _ in top["trial/val_accuracy"]] == [0, 1, 2, 3]
    assert [s for s, _ in top["study/hypervolume"]] == [1, 2, 3, 4]


def test_tensorboard_setting_and_missing_package_are_one_line_errors(tmp_path, tiny_config, monkeypatch):
    with pytest.raises(ConfigError, match="^tensorboard: expected true/false"):
        slimnas.search(tiny_config(tensorboard="yes"), n_trials=1, out=str(tmp_path / "a"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ConfigError, match="^tensorboard: expected the tensorboard package"):
        TensorBoardListener(tmp_path / "tb")
    with pytest.raises(ConfigError, match="tensorboard package"):
        slimnas.search(tiny_config(tensorboard=True), n_trials=1, out=str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()  # refused before anything is written
