"""compress and compress --auto report their phases through the listener, in order, from the
start; the command line renders them as lines when its output is not a terminal."""

from __future__ import annotations

import runpy

import torch
from typer.testing import CliRunner

from slimnas.cli import build_app
from slimnas.compress import CompressionPolicy, compress
from slimnas.compress._compress import train_from_scratch
from slimnas.study import Listener, ListenerGroup, TensorBoardListener, auto_compress


def small_cnn(model_file) -> torch.nn.Module:
    build = runpy.run_path(str(model_file))["build"]
    torch.manual_seed(0)
    return build()


class Recorder(Listener):
    """Every event, as ``(event, phase or trial, details)``."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def started(self, info):
        self.events.append(("started", info["kind"], info))

    def trial_started(self, number, n_epochs):
        self.events.append(("trial_started", number, n_epochs))

    def epoch_ended(self, number, epoch, metrics):
        self.events.append(("epoch_ended", number, epoch))

    def trial_finished(self, number, state, metrics, seconds):
        self.events.append(("trial_finished", number, state))

    def sensitivity(self, result):
        self.events.append(("sensitivity", None, result))

    def phase_started(self, phase, info):
        self.events.append(("phase_started", phase, info))

    def phase_epoch(self, phase, epoch, n_epochs, metrics):
        self.events.append(("phase_epoch", phase, (epoch, n_epochs)))

    def phase_progress(self, phase, done, info):
        self.events.append(("phase_progress", phase, done))

    def phase_finished(self, phase, info, seconds):
        self.events.append(("phase_finished", phase, info))

    def finished(self, info):
        self.events.append(("finished", info["kind"], info))

    def phases(self) -> list[str]:
        """The phases in the order they started, each once per start."""
        return [p for kind, p, _ in self.events if kind == "phase_started"]

    def balanced(self) -> bool:
        """Every phase ends before the next one starts (no phase left open)."""
        open_phase = None
        for kind, phase, _ in self.events:
            if kind == "phase_started":
                if open_phase is not None:
                    return False
                open_phase = phase
            elif kind == "phase_finished":
                if open_phase != phase:
                    return False
                open_phase = None
        return open_phase is None


def test_compress_reports_training_steps_measurement_and_export_in_order(tmp_path, data, conv_net_file):
    rec = Recorder()
    net = small_cnn(conv_net_file)
    train_from_scratch(net, data, epochs=2, seed=0, device="cpu", listener=rec)
    policy = CompressionPolicy.of(prune={"ratio": 0.5}, quantize={"mode": "fp16"})
    compress(net, data, policy, epochs=1, out=tmp_path / "c", latency_repeats=2, listener=rec)

    assert rec.phases() == ["train", "compress", "compress", "measure", "export"] and rec.balanced()
    kinds = [(k, p) for k, p, _ in rec.events]
    # the input model's training, epoch by epoch, and the pruning step's retraining
    assert [d for k, p, d in rec.events if k == "phase_epoch" and p == "train"] == [(1, 2), (2, 2)]
    assert [d for k, p, d in rec.events if k == "phase_epoch" and p == "compress"] == [(1, 1)]
    steps = [info["step"] for k, p, info in rec.events if k == "phase_started" and p == "compress"]
    assert steps == ["prune", "quantize"]
    assert kinds.index(("phase_epoch", "compress")) < kinds.index(("phase_finished", "compress"))
    finished = {p: info for k, p, info in rec.events if k == "phase_finished"}
    assert 0 <= finished["train"]["val_accuracy"] <= 1 and finished["export"]["out"] == str(tmp_path / "c")
    assert finished["compress"]["epochs"] is None  # quantize (fp16) does not retrain


def test_auto_reports_every_phase_and_its_trials_in_order(tmp_path, data, conv_net_file):
    rec, board = Recorder(), TensorBoardListener(tmp_path / "auto" / "tensorboard")
    net = small_cnn(conv_net_file)
    train_from_scratch(net, data, epochs=3, seed=0, device="cpu")
    res = auto_compress(net, data, budget=["macs<=60%"], n_trials=2, finetune_epochs=1, final_epochs=3,
                        importances=("l1",), precisions=("fp32",), out=tmp_path / "auto", latency_repeats=2,
                        listener=ListenerGroup(rec, board))
    assert rec.balanced()
    assert rec.phases() == ["measure", "sensitivity", "allocate", "hardware", "search", "refine", "finetune", "finetune",
                            "measure", "export"]
    kinds = [k for k, _, _ in rec.events]
    assert kinds[0] == "phase_started" and kinds[-1] == "finished"  # reported from the first step to the last
    # the run's header comes after the input model is measured; the sensitivity table after its phase
    assert kinds.index("started") == 2 and kinds.index("sensitivity") > kinds.index("started")

    # sensitivity: one step per prunable layer
    sens = [(k, d) for k, p, d in rec.events if p == "sensitivity" and k in ("phase_started", "phase_progress")]
    assert sens[0][1]["total"] == len(res.sensitivity.curves) == 2 and [d for _, d in sens[1:]] == [1, 2]

    # the MAC budget's allocation (between the sensitivity analysis and the search): its progress
    # as the share of the cut made, up to all of it
    cut = [d for k, p, d in rec.events if p == "allocate" and k == "phase_progress"]
    assert cut and cut == sorted(cut) and cut[-1] == 100

    # search: its trials, each started, with its fine-tune epoch, then finished, inside the phase
    start, end = (i for i, (k, p, _) in enumerate(rec.events) if p == "search" and k.startswith("phase_"))
    inside = [(k, n) for k, n, _ in rec.events[start + 1:end]]
    assert inside == [("trial_started", 0), ("epoch_ended", 0), ("trial_finished", 0),
                      ("trial_started", 1), ("epoch_ended", 1), ("trial_finished", 1)]
    assert rec.events[start][2]["total"] == 2 and rec.events[start][2]["done"] == 0

    # refine: one fine-tune per learning rate (one criterion), each an epoch long
    refine = [(k, d) for k, p, d in rec.events if p == "refine" and k in ("phase_epoch", "phase_progress")]
    assert refine == [("phase_epoch", (1, 1)), ("phase_progress", 1), ("phase_epoch", (1, 1)), ("phase_progress", 2)]
    final = [d for k, p, d in rec.events if k == "phase_epoch" and p == "finetune"]
    assert final == [(1, 3), (2, 3), (3, 3)]  # the final fine-tune after pruning; quantizing does not train
    assert [d["step"] for k, p, d in rec.events if k == "phase_started" and p == "finetune"] == ["prune", "quantize"]
    measured = [info for k, p, info in rec.events if k == "phase_finished" and p == "measure"]
    assert measured[0]["macs"] == res.before["macs"] and measured[1]["macs"] == res.after["macs"]

    # --tensorboard: the same events as event files (the listener closed itself when the run finished)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    top = EventAccumulator(str(tmp_path / "auto" / "tensorboard"))
    top.Reload()
    assert [e.step for e in top.Scalars("trial/val_accuracy")] == [0, 1]
    assert [e.step for e in top.Scalars("study/best_accuracy")] == [1, 2] and board.writer is None
    curve = EventAccumulator(str(tmp_path / "auto" / "tensorboard" / "trial_00001"))
    curve.Reload()
    assert [e.step for e in curve.Scalars("val/accuracy")] == [1]


def test_cli_prints_phase_lines_when_not_a_terminal_with_or_without_quiet(tmp_path, conv_net_file):
    """Not a terminal: a line per phase. --quiet means what it means for search (no live display,
    which a pipe has not anyway): the lines stay."""
    args = ["compress", "--model", f"{conv_net_file}:build", "--train-epochs", "1",
            "--prune", "0.5", "--epochs", "1"]
    r = CliRunner().invoke(build_app(), [*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    expected = ["loading mnist1d and the model", "training the input model (1 epoch) ...",
                "training the input model: done in", "compress: prune (1 epoch) ...", "compress: prune: done in",
                "measuring the model before and after", "checking the exported files against the model: done in"]
    at = [next((i for i, ln in enumerate(lines) if ln.startswith(e)), None) for e in expected]
    assert None not in at and at == sorted(at), (at, r.output)
    assert at[0] == 0  # the first line of output names the first phase
    assert "after/before" in r.output

    quiet = CliRunner().invoke(build_app(), [*args, "--out", str(tmp_path / "b"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert [ln.split(": done in")[0] for ln in quiet.output.splitlines() if "done in" in ln] == \
        [ln.split(": done in")[0] for ln in lines if "done in" in ln]
    assert "after/before" in quiet.output
