"""Outputs outside run folders, killed while being written (issue 46, round three): a
``compress --auto`` result appears as one unit beside the study it resumes, and what a killed
``compress`` or ``export`` left beside its ``--out`` is put right by the next command into the
same place (a stale staging folder removed, a backup holding the only copy of a result moved
back), each said in one line. Real subprocesses killed with SIGKILL at the write points the
``SLIMNAS_SLOW_WRITES`` hook holds open."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from test_hostile_run_files import MLP_FILE, cli, killed_mid_write, one_line_refusal, snapshot

import slimnas
from slimnas.errors import SlimnasError

#: what a compress --auto result is made of (its study.db is the run's record, carried across)
RESULT = ("report.json", "model.onnx", "policy.json", "weights.pt", "structure.json", "sensitivity.json", "run.json")


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def result_files(folder) -> dict[str, str]:
    """The files of a compress --auto result (its study, which every run adds to, left out)."""
    return {k: v for k, v in snapshot(folder).items() if k.split("/")[0] in RESULT}


def n_trials(folder) -> int:
    with sqlite3.connect(folder / "study.db") as db:
        return db.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """A finished two-trial ``compress --auto`` and the arguments that made it."""
    d = tmp_path_factory.mktemp("auto")
    (d / "net.py").write_text(MLP_FILE)
    args = ["compress", "--model", f"{d / 'net.py'}:build", "--dataset", "digits", "--train-epochs", "1", "--auto",
            "--budget", "macs<=60%", "--finetune-epochs", "1", "--final-epochs", "1", "--no-hardware-aware", "--quiet"]
    code, _, err = cli([*args, "--n-trials", "2", "--out", str(d / "out")])
    assert code == 0, err
    import optuna  # the default early stopping is search's, kept in the study for its resume

    assert optuna.load_study(study_name="auto", storage=f"sqlite:///{d / 'out' / 'study.db'}").user_attrs[
        "early_stopping"] == "none"
    return d, args


@pytest.mark.parametrize("step", ["staged", "moved aside", "moved in"])
def test_compress_auto_killed_while_writing_its_result_never_shows_a_mix(auto_run, tmp_path, step):
    """``--auto`` wrote report.json, policy.json, model.onnx and the weights one by one into the
    folder of its study: a kill -9 between them left a new model beside the earlier report. Now
    the result is staged and swapped in whole, the study carried across. Killed with the new
    result staged, the earlier one is read as it was (the next command removes the stage);
    killed between the two renames, every reader refuses in one line naming the backup (the
    earlier result byte for byte, with the study) and the next command into the folder moves it
    back; killed after them, the new result is whole and the study holds the new trial (run, as
    the study was started before --auto's early-stopping default changed, under the rule it had
    then)."""
    src, args = auto_run
    shutil.copytree(src, tmp_path, dirs_exist_ok=True)
    out = tmp_path / "out"
    before = result_files(out)
    model = f"{src / 'net.py'}:build"
    aside = lambda: [p for p in tmp_path.glob(".out.*.previous") if p.is_dir()]  # noqa: E731
    staged = lambda: [p for p in tmp_path.glob(".out.*.tmp") if (p / "report.json").is_file()]  # noqa: E731
    ready = {"staged": staged, "moved aside": lambda: aside() and not out.exists(),
             "moved in": lambda: aside() and (out / "report.json").is_file()}[step]
    if step == "moved in":  # and a study as an --auto before its default became none left it: no rule kept
        with sqlite3.connect(out / "study.db") as db:
            db.execute("delete from study_user_attributes where key = 'early_stopping'")
    killed_mid_write([*args, "--n-trials", "3", "--out", str(out)], ready, delay=2)
    if step == "staged":  # the new result written beside the folder, not yet in: the earlier one is read
        [stage] = staged()
        assert result_files(out) == before and n_trials(out) == 3 and not aside()
        assert slimnas.load(out, model=model) is not None
        code, stdout, err = cli(["compress", "--model", model, "--prune", "0.5", "--out", str(out)])
        assert code == 2 and f"removed {stage}" in " ".join(stdout.split()) and not stage.exists(), (stdout, err)
        assert result_files(out) == before
        return
    [backup] = aside()
    if step == "moved aside":
        assert not out.exists() and result_files(backup) == before and n_trials(backup) == 3
        with pytest.raises(SlimnasError, match="interrupted while being replaced"):
            slimnas.load(out, model=model)
        one_line_refusal(["export", str(out), "--format", "onnx-fp32", "--out", str(tmp_path / "m.onnx")], backup)
        one_line_refusal(["report", str(out)], backup)
        one_line_refusal(["runs", "--root", str(out)], backup)
        assert result_files(backup) == before and not (tmp_path / "m.onnx").exists()
        # the next command into the folder moves the backup back (its process is gone), says so, and
        # goes on as it would have: here a plain compress, refused because --out holds a result
        code, stdout, err = cli(["compress", "--model", model, "--prune", "0.5", "--out", str(out)])
        assert code == 2 and "a new or empty folder" in err, err
        assert f"restored {out} from {backup.name}" in " ".join(stdout.split()), stdout
        assert result_files(out) == before and n_trials(out) == 3 and not aside()  # the study kept its new trial
        return
    import optuna  # the resumed study ran its new trial with the rule its first ones had

    assert optuna.load_study(study_name="auto", storage=f"sqlite:///{out / 'study.db'}").user_attrs[
        "early_stopping"] == "median"
    new = json.loads((out / "report.json").read_text())
    assert new["n_trials"] == 3 and n_trials(out) == 3  # the new result, whole, beside the resumed study
    assert set(result_files(out)) == set(before) and not list(tmp_path.glob(".out.*.tmp"))
    assert slimnas.load(out, model=model) is not None
    code, _, err = cli(["export", str(out), "--format", "onnx-fp32", "--out", str(tmp_path / "m.onnx")])
    assert code == 0, err
    code, stdout, err = cli(["compress", "--model", model, "--prune", "0.5", "--out", str(out)])  # refused: --out holds files
    assert code == 2 and "a new or empty folder" in err, err
    assert f"removed {backup}" in " ".join(stdout.split()) and not aside()  # the stale backup, said in one line


def test_the_next_command_puts_right_what_killed_writers_left(tmp_path):
    """Staging folders and backups of processes that are gone: a staging folder is removed; a
    backup is moved back where it holds the only copy of the result and removed where a complete
    result replaced it; a backup of a live process is left alone (and still refused). Each is said
    in one line, and nothing else changes."""
    (tmp_path / "net.py").write_text(MLP_FILE)
    out, gone, alive = tmp_path / "out", dead_pid(), os.getpid()
    result = tmp_path / f".out.{gone}.previous"
    result.mkdir()
    (result / "report.json").write_text('{"after": {}}')
    (result / "model.onnx").write_bytes(b"onnx")
    before = snapshot(result)
    (tmp_path / f".out.{gone}.tmp").mkdir()
    (tmp_path / f".out.{gone}.tmp" / "model.onnx").write_bytes(b"half")
    argv = ["compress", "--model", f"{tmp_path / 'net.py'}:build", "--prune", "0.5", "--out", str(out)]
    code, stdout, err = cli(argv)
    lines = " ".join(stdout.split())
    assert code == 2 and "a new or empty folder, or --overwrite" in err, err  # the restored result is not replaced
    assert f"restored {out} from {result.name}" in lines and f"removed {tmp_path / f'.out.{gone}.tmp'}" in lines
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["net.py", "out"]

    stale = tmp_path / f".out.{gone}.previous"  # beside a complete result: the result it replaced
    shutil.copytree(out, stale)
    (out / f"run.json.{gone}.tmp").write_text("{")  # a write into the folder cut short
    code, stdout, err = cli(argv)
    assert f"removed {stale}" in " ".join(stdout.split()) and not stale.exists(), stdout
    assert snapshot(out) == before

    live = tmp_path / f".out.{alive}.previous"  # a process still replacing it: not touched, refused
    shutil.move(out, live)
    one_line_refusal(argv, live)
    assert snapshot(live) == before and not out.exists()


def test_an_export_removes_the_staging_folder_a_killed_export_left(tmp_path):
    out, gone = tmp_path / "m.onnx", dead_pid()
    (tmp_path / f".m.onnx.{gone}.tmp").mkdir()
    (tmp_path / f".m.onnx.{gone}.tmp" / "m.onnx").write_bytes(b"half")
    code, stdout, err = cli(["export", str(tmp_path / "no-run"), "--out", str(out)])
    assert code == 2  # no run there: refused, and the staging folder is gone all the same
    assert f"removed {tmp_path / f'.m.onnx.{gone}.tmp'}" in " ".join(stdout.split()), stdout
    assert list(tmp_path.iterdir()) == []


def test_auto_compress_from_python_refuses_an_out_cut_short_before_any_work(tmp_path):
    """From the library too: with the folder (and its study) under its backup name, a new
    auto_compress into it would start a new study in an empty folder; it stops first."""
    import torch

    from slimnas.data import DataSplits
    from slimnas.study import auto_compress

    backup = tmp_path / f".out.{dead_pid()}.previous"
    backup.mkdir()
    (backup / "study.db").write_bytes(b"")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 8, generator=g), torch.randint(0, 3, (48,), generator=g)
    data = DataSplits("toy", x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], 3)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with pytest.raises(SlimnasError, match=f"interrupted while being replaced; what it held before .*{backup.name}"):
        auto_compress(net, data, budget=["macs<=60%"], n_trials=1, out=tmp_path / "out", hardware_aware=False)
    assert not (tmp_path / "out").exists()
