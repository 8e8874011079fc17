"""Hostile run folders, generated: every JSON, YAML, weights, ONNX and study file of a finished
run truncated, emptied, replaced by garbage or by JSON of the wrong shape, then read by every
command that reads it (``runs``, ``report``, ``export --trial``, ``export --best``,
:func:`slimnas.load`, a resumed ``search``). Each read ends in one line naming the file and
exit 2 (``runs`` lists the run as damaged and goes on; a resume re-runs a damaged trial), no
traceback, and every file stays byte-for-byte as it was.

One small run is built once per module and copied per case; ``COUNTS`` tallies, per command,
the cases tried and those that ended as required (printed at the end of the module)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import slimnas
from slimnas.cli import main
from slimnas.errors import SlimnasError
from slimnas.study._record import select_member

# cases per run (HOSTILE_RUN_CASES=n,m runs more: the counts in the module's output)
N_READS, N_RESUMES = map(int, os.environ.get("HOSTILE_RUN_CASES", "24,4").split(","))
CONFIG = {"data": {"dataset": "digits"}, "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
          "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}}, "budget": ["macs<=100000"]}
COUNTS: dict[str, Counter] = {}
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]  # no shrinking: each case runs commands for seconds
RUN_FILES = ["config.yaml", "pareto.json", "run.json", "slimnas-run.json", "study.db"]
TRIAL_FILES = ["arch.json", "metrics.json", "weights.pt", "model.onnx"]
#: JSON that is the wrong shape for every JSON file a run holds (each must be an object)
WRONG_JSON = ["[]", "[1, 2]", '"text"', "3", "null", "true"]
#: objects of the wrong shape for one file
WRONG_OBJECTS = {
    "pareto.json": ['{"front": 5}', '{"front": [{"trial": "x", "metrics": {}}]}', '{"front": [3]}'],
    "run.json": ['{"input_shape": "x", "n_classes": 2}', '{"input_shape": [64], "n_classes": "ten"}',
                 '{"input_shape": [64], "n_classes": 10, "data": 4}'],
    "slimnas-run.json": ['{"study": 7}', "{}"],
    "arch.json": ["{}", '{"arch": 1}', '{"arch": {"family": "nope"}}'],
}
WRONG_YAML = ["- a\n- b\n", "name: 5\nobjectives: [accuracy]\nn_trials: 2\n", "just text\n",
              "name: digits-tpe\nobjectives: accuracy\nn_trials: 2\n"]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(argv: list[str]) -> tuple[int, str, str]:
    """``slimnas`` in this process: (exit code, stdout, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A finished two-trial run, and the trial ``export --best ""`` picks."""
    d = tmp_path_factory.mktemp("base")
    (d / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    code, _, err = cli(["search", str(d / "c.yaml"), "--n-trials", "2", "--out", str(d / "run"), "--quiet"])
    assert code == 0, err
    best = slimnas.study.open_run(d / "run")
    chosen = select_member(best.front, best.objectives, "")["trial"]
    yield d, chosen
    print("\ncases per command:")
    for command, c in sorted(COUNTS.items()):
        print(f"  {command}: {c.pop('tried')} tried: " + ", ".join(f"{n} {k}" for k, n in sorted(c.items())))


@st.composite
def damages(draw, files: list[str]) -> tuple[str, str, bytes]:
    """``(file, kind, new content)``: one file of the run, damaged one way."""
    name = draw(st.sampled_from(files))
    leaf = name.rsplit("/", 1)[-1]
    kinds = ["empty", "garbage"] + (["truncated"] if leaf != "study.db" else []) \
        + (["wrong shape"] if leaf.endswith((".json", ".yaml")) else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "empty":
        return name, kind, b""
    if kind == "garbage":
        junk = draw(st.binary(min_size=1, max_size=48))
        return name, kind, b"\x00\xff" + junk  # never valid UTF-8 text, JSON, YAML, zip or protobuf header
    if kind == "wrong shape":
        text = draw(st.sampled_from(WRONG_YAML if leaf == "config.yaml" else WRONG_JSON + WRONG_OBJECTS.get(leaf, [])))
        return name, kind, text.encode()
    return name, kind, b"truncated"  # filled in from the real file's length


def damage(run: Path, case: tuple[str, str, bytes], fraction: float) -> None:
    name, kind, content = case
    path = run / name
    if kind == "truncated":
        raw = path.read_bytes()
        content = raw[: max(1, min(len(raw) - 1, int(len(raw) * fraction)))]
    path.write_bytes(content)


def must_fail(command: str, name: str, kind: str, trial: int) -> bool:
    """Whether ``command`` reads ``name`` (so a damaged copy must stop it). A truncated YAML can
    still be a valid, shorter YAML (it is read if it still holds what is read)."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "config.yaml" and kind == "truncated":
        return False
    if leaf == "slimnas-run.json" or (leaf == "study.db" and command not in ("runs", "report")):
        return False
    if name in ("config.yaml", "pareto.json", "run.json", "study.db"):
        return True
    return command in ("export --trial", "export --best", "load") and name in (
        f"trials/{trial:05d}/arch.json", f"trials/{trial:05d}/weights.pt")


def tally(command: str, ok: bool, outcome: str = "") -> None:
    """Count a case of ``command``: ``outcome`` says how it ended (when it ended as required)."""
    c = COUNTS.setdefault(command, Counter())
    c["tried"] += 1
    c[outcome if ok else "NOT as required"] += 1


def check_one_line(command: str, code: int, err: str, name: str, required: bool) -> None:
    lines = err.strip().splitlines()
    leaf = name.rsplit("/", 1)[-1]
    one = code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and leaf in lines[0]
    ok = "Traceback" not in err and (one or (code == 0 and not required))
    tally(command, ok, "one line naming the file + exit 2" if one else "exit 0 (a file it does not need, or still readable)")
    assert ok, (command, name, code, err)


@settings(max_examples=N_READS, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=damages(RUN_FILES + [f"trials/0000{n}/{f}" for n in (0, 1) for f in TRIAL_FILES]),
       fraction=st.floats(0.0, 1.0))
def test_a_damaged_run_file_is_one_line_for_every_reader_and_changes_nothing(base, tmp_path_factory, case, fraction):
    src, chosen = base
    root = tmp_path_factory.mktemp("case")
    run = root / "runs" / "x"
    shutil.copytree(src / "run", run)
    shutil.copytree(src / "run", root / "runs" / "intact")
    damage(run, case, fraction)
    name, kind, _ = case
    trial = int(name.split("/")[1]) if name.startswith("trials/") else chosen
    before = snapshot(root / "runs")

    code, out, err = cli(["runs", "--root", str(root / "runs")])  # lists the damaged run and goes on
    required = must_fail("runs", name, kind, trial)
    listed = {r.folder.name: r.status for r in slimnas.study.list_runs(root / "runs")}
    ok = code == 0 and listed.get("intact") == "complete" and "x" in listed and (
        not required or (listed["x"] in ("damaged", "unreadable") and listed["x"] in out))
    tally("runs", ok, f"exit 0, listed as {listed.get('x')}")
    assert ok, (name, kind, code, out, err)

    for command, argv in [
        ("report", ["report", str(run), "--out", str(root / "report")]),
        ("export --trial", ["export", str(run), "--trial", str(trial), "--out", str(root / "t.onnx")]),
        ("export --best", ["export", str(run), "--best", "", "--out", str(root / "b.onnx")]),
    ]:
        code, _, err = cli(argv)
        check_one_line(command, code, err, name, must_fail(command, name, kind, trial if command != "export --best"
                                                          else chosen))
    try:
        slimnas.load(run, trial=trial)
        code, err = 0, ""
    except SlimnasError as e:
        code, err = 2, f"error: {e}"
    check_one_line("load", code, err, name, must_fail("load", name, kind, trial))
    assert snapshot(root / "runs") == before


@settings(max_examples=N_RESUMES, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=damages(["slimnas-run.json", "study.db", "config.yaml"] + [f"trials/00000/{f}" for f in TRIAL_FILES]),
       fraction=st.floats(0.0, 1.0))
def test_a_resume_reruns_a_damaged_trial_and_refuses_a_damaged_run_file(base, tmp_path_factory, case, fraction):
    """The study is the record: a trial whose files are damaged is set aside and its candidate
    run again, a damaged config.yaml is written again; a damaged marker or study stops the
    resume in one line, nothing changed."""
    src, _ = base
    run = tmp_path_factory.mktemp("resume") / "x"
    shutil.copytree(src / "run", run)
    damage(run, case, fraction)
    name, kind, _ = case
    before = snapshot(run)
    code, out, err = cli(["search", str(src / "c.yaml"), "--n-trials", "2", "--out", str(run), "--quiet"])
    if name.startswith("trials/"):
        front = json.loads((run / "pareto.json").read_text())
        ok = code == 0 and "trial 0 is re-run" in out + err and all(m["trial"] != 0 for m in front["front"]) \
            and json.loads((run / "trials/00000/metrics.json").read_text())["state"] == "failed" \
            and snapshot(run / "trials" / "00001") == {k.removeprefix("trials/00001/"): v for k, v in before.items()
                                                       if k.startswith("trials/00001/")} \
            and (run / "trials" / "00002" / "weights.pt").is_file()
        tally("resume", ok, "exit 0, the damaged trial re-run")
        assert ok, (name, kind, code, out, err)
    elif name == "config.yaml":  # the study holds the definition: config.yaml is written again from it
        ok = code == 0 and yaml.safe_load((run / "config.yaml").read_text())["name"] == "digits-tpe"
        tally("resume", ok, "exit 0, config.yaml written anew")
        assert ok, (name, kind, code, out, err)
    else:
        check_one_line("resume", code, err, name, True)
        assert snapshot(run) == before


def test_a_config_yaml_cut_into_a_value_no_run_has_is_named_by_every_reader(base, tmp_path):
    """``val_fraction: 0.2`` truncated to ``val_fraction: 0.`` is still YAML of the right shape: the
    readers that rebuild the run's splits name config.yaml instead of the data field alone."""
    src, chosen = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["val_fraction"] = 0.0
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    before = snapshot(run)
    for argv in (["export", str(run), "--trial", str(chosen), "--out", str(tmp_path / "m.onnx")],
                 ["export", str(run), "--best", "", "--out", str(tmp_path / "b.onnx")]):
        code, _, err = cli(argv)
        one_line(code, err, "config.yaml", "val_fraction")
    assert snapshot(run) == before


def one_line(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), err


# a search started from the library once the barrier file appears
RACER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import slimnas
    barrier, out, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    Path(f"{barrier}.{name}").touch()  # ready
    while not barrier.exists():
        time.sleep(0.001)
    try:
        slimnas.search(dataset="digits", n_trials=1, epochs=1, out=out, name=name, seed=int(sys.argv[4]))
    except slimnas.SlimnasError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
""")


def test_a_folder_made_here_but_claimed_first_by_another_search_is_left_to_it(tmp_path, monkeypatch):
    """The loser of the race made the folder (its mkdir came first) but the other search claimed
    it first: the loser's refusal removed the whole folder, the winner's marker and study.db with
    it (the winner then failed with 'unable to open database file')."""
    from slimnas.study._artifacts import RunFolder

    root = tmp_path / "run"
    real_claim = RunFolder.claim

    def other_claims_first(self, study, storage):  # between this search's mkdir and its claim
        real_claim(RunFolder(root), "study-b", "sqlite:///b")
        (root / "study.db").write_text("study-b's")
        return real_claim(self, study, storage)

    monkeypatch.setattr(RunFolder, "claim", other_claims_first)
    with pytest.raises(SlimnasError, match="holds study 'study-b'"):
        RunFolder(root).open_claimed("study-a", "sqlite:///a", lambda: None)
    assert RunFolder(root).owner() == "study-b" and (root / "study.db").read_text() == "study-b's"
    monkeypatch.setattr(RunFolder, "claim", real_claim)
    with pytest.raises(RuntimeError):  # a set-up that fails before any claim leaves no empty folder behind
        RunFolder(tmp_path / "fresh").open_claimed("study-a", "sqlite:///a", lambda: (_ for _ in ()).throw(RuntimeError))
    assert not (tmp_path / "fresh").exists()


def test_two_searches_started_at_once_on_one_folder_one_is_refused(tmp_path):
    """Defect A: both passed the ownership check and shared one study.db and trials/00000."""
    barrier, out = tmp_path / "go", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(barrier), str(out), name, str(k)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, name in enumerate(["study-a", "study-b"])]
    wait_until(lambda: all(Path(f"{barrier}.{n}").exists() for n in ("study-a", "study-b")))
    barrier.touch()  # both have imported slimnas and wait
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    one_line(2, loser, "out:", "holds study")
    winner = "study-a" if "'study-b'" in loser.split("for study")[1][:12] else "study-b"
    assert json.loads((out / "slimnas-run.json").read_text())["study"] == winner
    import optuna
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{out / 'study.db'}")] == [winner]


def test_the_folder_claim_is_exclusive(tmp_path):
    """Both searches may pass the check; only one can create the marker."""
    from slimnas.study import RunFolder

    a, b = RunFolder(tmp_path / "run"), RunFolder(tmp_path / "run")
    a.check_claim("a"), b.check_claim("b")
    assert a.create() and not b.create()  # one of them made the folder
    assert a.claim("a", "sqlite:///x")
    with pytest.raises(SlimnasError, match="holds study 'a'"):
        b.claim("b", "sqlite:///x")
    assert not a.claim("a", "sqlite:///x")  # the same study again: its own folder
    assert json.loads((tmp_path / "run" / "slimnas-run.json").read_text())["study"] == "a"


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_lost_study_never_overwrites_the_trials(base, tmp_path, how):
    """Defect B: a new study started in the folder and overwrote trials/00000 of the old run."""
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    if how == "deleted":
        (run / "study.db").unlink()
    else:
        (run / "study.db").write_bytes(b"")
    before = snapshot(run)
    code, _, err = cli(["search", str(src / "c.yaml"), "--n-trials", "3", "--out", str(run), "--quiet"])
    one_line(code, err, str(run), "trials/00000", "study.db")
    assert snapshot(run) == before


def test_trial_folders_the_study_does_not_know_are_never_overwritten(base, tmp_path):
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    shutil.copytree(run / "trials" / "00001", run / "trials" / "00007")  # a folder of another study
    before = snapshot(run)
    code, _, err = cli(["search", str(src / "c.yaml"), "--n-trials", "3", "--out", str(run), "--quiet"])
    one_line(code, err, "trials/00007")
    assert snapshot(run) == before


def test_a_saved_config_reproduces_into_the_new_folder(base, tmp_path):
    """Defect 7: the saved storage: pointed back at the old run's study.db."""
    src, _ = base
    before = snapshot(src / "run")
    code, _, err = cli(["search", str(src / "run" / "config.yaml"), "--out", str(tmp_path / "y"), "--name", "z",
                        "--n-trials", "1", "--quiet"])
    assert code == 0, err
    import optuna
    assert [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'y' / 'study.db'}")] == ["z"]
    assert snapshot(src / "run") == before


def test_a_resume_without_the_budget_keeps_the_stored_one_and_says_so(base, tmp_path):
    """Defect 8: config.yaml was rewritten to budget: [] (runs then showed 8/6)."""
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({k: v for k, v in CONFIG.items() if k != "budget"}))
    code, out, err = cli(["search", str(tmp_path / "c.yaml"), "--n-trials", "2", "--out", str(run), "--quiet"])
    assert code == 0, err
    assert "resuming with the run's own budget macs<=100000" in out + err
    assert yaml.safe_load((run / "config.yaml").read_text())["budget"] == ["macs<=100000"]
    assert json.loads((run / "pareto.json").read_text())["budget"] == ["macs<=100000"]


def test_an_explicit_sqlite_storage_inside_the_new_folder(tmp_path):
    """Defect 11: refused as unreachable because the folder did not exist yet."""
    out = tmp_path / "runs" / "x"
    code, _, err = cli(["search", "--dataset", "digits", "--n-trials", "1", "--epochs", "1", "--out", str(out),
                        "--storage", f"sqlite:///{out / 'study.db'}", "--quiet"])
    assert code == 0, err
    assert (out / "study.db").is_file() and (out / "trials" / "00000" / "weights.pt").is_file()


def test_runs_where_there_are_none_and_best_before_the_first_front(base, tmp_path):
    """Defect 13, and export --best on a run killed before its first front."""
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = cli(["runs"])
    finally:
        os.chdir(old)
    assert code == 0 and "no runs here" in out and "no runs/ folder" in out, (code, out, err)
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    (run / "pareto.json").unlink()
    code, _, err = cli(["export", str(run), "--best", "", "--out", str(tmp_path / "m.onnx")])
    one_line(code, err, "has none yet")
    assert "nothing met" not in err


@pytest.mark.parametrize("target, fmt", [("study.db", "onnx-fp32"), ("trials/00000", "state-dict"),
                                         ("trials/00001/model.onnx", "onnx-fp32"), ("config.yaml", "torchscript"),
                                         (".", "state-dict")])
def test_export_never_writes_over_the_run_s_own_files(base, tmp_path, target, fmt):
    """Defect C: --out run/study.db exited 0 and the study became an ONNX file."""
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    before = snapshot(run)
    code, _, err = cli(["export", str(run), "--trial", "1", "--format", fmt, "--out", str(run / target)])
    one_line(code, err, "out:", "outside the")
    assert snapshot(run) == before
    code, _, err = cli(["export", str(run), "--trial", "1", "--out", str(run / "exported.onnx")])  # beside: fine
    assert code == 0 and (run / "exported.onnx").is_file(), err


def killed_mid_write(argv: list[str], ready, timeout: float = 300, delay: float = 120) -> None:
    """Run ``slimnas argv`` with every file replacement slowed down (``delay`` seconds at each
    point), and kill -9 it once ``ready()`` (its new files are written and wait to be renamed into place)."""
    proc = subprocess.Popen([sys.executable, "-m", "slimnas", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "SLIMNAS_SLOW_WRITES": str(delay), "OMP_NUM_THREADS": "1"})
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)
    proc.kill()
    proc.wait(timeout=60)


@pytest.mark.parametrize("fmt, name", [("torchscript", "m.pt"), ("state-dict", "sd")])
def test_an_export_killed_mid_write_leaves_the_earlier_export_as_it_was(base, tmp_path, fmt, name):
    """Defect C: a kill -9 left a truncated TorchScript file or a 0-byte state-dict weights.pt."""
    src, _ = base
    out = tmp_path / "exports"
    code, _, err = cli(["export", str(src / "run"), "--trial", "0", "--format", fmt, "--out", str(out / name)])
    assert code == 0, err
    before, run_before = snapshot(out), snapshot(src / "run")
    killed_mid_write(["export", str(src / "run"), "--trial", "1", "--format", fmt, "--out", str(out / name)],
                     lambda: any(p.is_dir() and any(p.iterdir()) for p in out.glob(f".{name}.*.tmp")))
    after = {k: v for k, v in snapshot(out).items() if not k.startswith(f".{name}.")}
    assert after == before and snapshot(src / "run") == run_before


def test_a_state_dict_export_killed_between_the_folder_renames_is_refused_naming_the_backup(base, tmp_path):
    """Issue 46 C: a kill -9 between moving the earlier state-dict folder aside and the new one in
    left it as ``<name>.<pid>.old.tmp`` (a name a run folder's clean-up deletes) and ``load`` said
    only that the folder does not exist; now the backup is kept and named."""
    src, _ = base
    sd = tmp_path / "exports" / "sd"
    code, _, err = cli(["export", str(src / "run"), "--trial", "0", "--format", "state-dict", "--out", str(sd)])
    assert code == 0, err
    before = snapshot(sd)
    aside = lambda: list(sd.parent.glob(".sd.*.previous"))  # noqa: E731
    killed_mid_write(["export", str(src / "run"), "--trial", "1", "--format", "state-dict", "--out", str(sd)],
                     lambda: aside() and not sd.exists(), delay=5)
    [backup] = aside()
    assert snapshot(backup) == before
    with pytest.raises(SlimnasError, match="interrupted while being replaced"):
        slimnas.load(sd)
    one_line_refusal(["export", str(sd), "--format", "onnx-fp32", "--out", str(tmp_path / "m.onnx")], backup)
    code, _, err = cli(["export", str(src / "run"), "--trial", "1", "--format", "state-dict", "--out", str(sd)])
    assert code == 0, err  # a new export into the same place replaces it and clears the backup
    assert slimnas.load(sd) is not None and not aside()


MLP_FILE = "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 24), " \
           "torch.nn.ReLU(), torch.nn.Linear(24, 10))\n"


def test_a_compress_killed_mid_write_leaves_the_earlier_result_as_it_was(tmp_path):
    """Defect C: a kill -9 left the new model.onnx beside the old report.json and compressed/."""
    (tmp_path / "net.py").write_text(MLP_FILE)
    args = ["compress", "--model", f"{tmp_path / 'net.py'}:build", "--dataset", "digits", "--train-epochs", "1",
            "--epochs", "1", "--out", str(tmp_path / "out")]
    code, _, err = cli([*args, "--prune", "0.25"])
    assert code == 0, err
    before = snapshot(tmp_path / "out")
    killed_mid_write([*args, "--prune", "0.5", "--overwrite"], lambda: any((p / "report.json").is_file()
                                                           for p in tmp_path.glob(".out.*.tmp")))
    assert snapshot(tmp_path / "out") == before
    assert slimnas.load(tmp_path / "out", model=f"{tmp_path / 'net.py'}:build") is not None


def one_line_refusal(argv: list[str], backup: Path) -> None:
    code, _, err = cli(argv)
    assert code == 2 and len(err.strip().splitlines()) == 1, (argv, code, err)
    assert "interrupted while being replaced" in err and backup.name in err, err


@pytest.mark.parametrize("step", ["moved aside", "moved in"])
def test_a_compress_killed_while_swapping_folders_never_shows_a_mix(tmp_path, step):
    """Issue 46 C: replacing a compress output moved its files in one by one, so a kill -9 between
    the moves left a folder whose compressed/ was new and model.onnx old, which load, export and
    report read. Now the folder is swapped whole; killed between the two renames every reader
    refuses in one line naming the backup, which holds the earlier result byte for byte; killed
    after them, the new result is whole and read."""
    (tmp_path / "net.py").write_text(MLP_FILE)
    out = tmp_path / "out"
    args = ["compress", "--model", f"{tmp_path / 'net.py'}:build", "--dataset", "digits", "--train-epochs", "1",
            "--epochs", "1", "--out", str(out)]
    code, _, err = cli([*args, "--prune", "0.25"])
    assert code == 0, err
    before = snapshot(out)
    report = json.loads((out / "report.json").read_text())
    aside = lambda: [p for p in tmp_path.glob(".out.*.previous") if p.is_dir()]  # noqa: E731
    ready = ((lambda: aside() and not out.exists()) if step == "moved aside"
             else (lambda: aside() and (out / "report.json").is_file()))
    killed_mid_write([*args, "--prune", "0.5", "--overwrite"], ready, delay=5)
    [backup] = aside()
    assert snapshot(backup) == before  # the earlier result, whole, byte for byte
    if step == "moved aside":
        assert not out.exists()
        with pytest.raises(SlimnasError, match="interrupted while being replaced"):
            slimnas.load(out, model=f"{tmp_path / 'net.py'}:build")
        one_line_refusal(["export", str(out), "--format", "onnx-fp32", "--out", str(tmp_path / "m.onnx")], backup)
        one_line_refusal(["report", str(out)], backup)
        one_line_refusal(["runs", "--root", str(out)], backup)
        assert snapshot(backup) == before and not (tmp_path / "m.onnx").exists()
        # the next compress into --out moves the backup back (its process is gone) and says so
        code, stdout, err = cli([*args, "--prune", "0.5"])
        assert code == 2 and "a new or empty folder" in err and "restored" in stdout, (stdout, err)
        assert snapshot(out) == before and not aside()
        return
    new = json.loads((out / "report.json").read_text())  # the new result, whole: read as it is
    assert not list(tmp_path.glob(".out.*.tmp"))  # the staging folder became the output
    assert new["after"] != report["after"] and set(snapshot(out)) >= {"report.json", "model.onnx", "run.json"}
    assert slimnas.load(out, model=f"{tmp_path / 'net.py'}:build") is not None
    code, _, err = cli(["export", str(out), "--format", "onnx-fp32", "--out", str(tmp_path / "m.onnx")])
    assert code == 0, err
    code, _, err = cli([*args, "--prune", "0.25", "--overwrite"])  # the next run clears the stale backup
    assert code == 0, err
    assert not aside()


def test_replacing_a_folder_keeps_the_users_own_files_and_drops_the_earlier_outputs(tmp_path):
    from slimnas._files import swap_folder

    out, stage = tmp_path / "out", tmp_path / ".out.1.tmp"
    out.mkdir()
    stage.mkdir()
    for name in ("report.json", "model.onnx", "notes.txt"):
        (out / name).write_text(f"old {name}")
    (stage / "report.json").write_text("new")
    swap_folder(stage, out, keep=lambda name: name == "notes.txt")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.json"]
    assert (out / "report.json").read_text() == "new" and (out / "notes.txt").read_text() == "old notes.txt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@contextlib.contextmanager
def small_disk(path: Path, size: str = "6M"):
    """A real file system of ``size`` at ``path`` (tmpfs; needs root, as in CI's container)."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def read_only(path: Path) -> contextlib.AbstractContextManager:
    """``path`` made unwritable for this process (root ignores modes: the immutable attribute)."""
    @contextlib.contextmanager
    def made():
        if os.geteuid() == 0:
            if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
                pytest.skip("chattr +i is not supported here")
            try:
                yield
            finally:
                subprocess.run(["chattr", "-i", str(path)], check=False)
        else:
            mode = path.stat().st_mode
            path.chmod(0o555 if path.is_dir() else 0o444)
            try:
                yield
            finally:
                path.chmod(mode)
    return made()


def test_a_disk_filling_up_mid_search_and_on_resume_is_one_line(base, tmp_path):
    """Was a 97-line `AssertionError: Should not reach`, then a StorageInternalError on resume."""
    import threading

    src, _ = base
    with small_disk(tmp_path / "disk") as disk:
        run = disk / "run"
        filler = threading.Thread(target=lambda: (wait_until(lambda: (run / "trials" / "00001").is_dir()), fill(disk)))
        filler.start()
        code, _, err = cli(["search", str(src / "c.yaml"), "--n-trials", "6", "--out", str(run), "--quiet"])
        filler.join()
        one_line(code, err, str(run))
        assert "space" in err or "full" in err
        before = snapshot(run)
        code, _, err = cli(["search", str(src / "c.yaml"), "--n-trials", "6", "--out", str(run), "--quiet"])
        one_line(code, err, str(run))
        assert snapshot(run) == before
        import optuna
        done = optuna.load_study(study_name="digits-tpe", storage=f"sqlite:///{run / 'study.db'}").trials
        assert done and done[0].state == optuna.trial.TrialState.COMPLETE  # the completed trial is kept


def wait_until(predicate, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_a_read_only_study_or_export_path_is_one_line(base, tmp_path):
    """Was 126 lines of traceback (resume) and an OSError (export)."""
    src, _ = base
    run = tmp_path / "run"
    shutil.copytree(src / "run", run)
    before = snapshot(run)
    with read_only(run / "study.db"):
        code, _, err = cli(["search", str(src / "c.yaml"), "--n-trials", "3", "--out", str(run), "--quiet"])
    one_line(code, err, "storage:", str(run / "study.db"))
    assert snapshot(run) == before
    (tmp_path / "locked").mkdir()
    with read_only(tmp_path / "locked"):
        code, _, err = cli(["export", str(run), "--trial", "0", "--out", str(tmp_path / "locked" / "m.onnx")])
    one_line(code, err, "out:", str(tmp_path / "locked"))
    assert list((tmp_path / "locked").iterdir()) == []
