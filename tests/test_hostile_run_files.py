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
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import slimnas
from slimnas.cli import main
from slimnas.errors import SlimnasError

N_READS, N_RESUMES = 40, 6
CONFIG = {"data": {"dataset": "digits"}, "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
          "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}}}
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
    chosen = slimnas.study.select_member(best.front, best.objectives, "")["trial"]
    yield d, chosen
    print("\ncases per command (tried / one line + exit 2, or as required):")
    for command, c in sorted(COUNTS.items()):
        print(f"  {command}: {c['tried']} / {c['ok']}")


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


def tally(command: str, ok: bool) -> None:
    c = COUNTS.setdefault(command, Counter())
    c["tried"] += 1
    c["ok"] += ok


def check_one_line(command: str, code: int, err: str, name: str, required: bool) -> None:
    lines = err.strip().splitlines()
    leaf = name.rsplit("/", 1)[-1]
    ok = "Traceback" not in err and (
        (code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and leaf in lines[0])
        or (code == 0 and not required))
    tally(command, ok)
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
    tally("runs", ok)
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
    run again; a damaged marker, study or config stops the resume in one line, nothing changed."""
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
        tally("resume", ok)
        assert ok, (name, kind, code, out, err)
    else:
        required = kind != "truncated"
        check_one_line("resume", code, err, name, required)
        if code == 2:
            assert snapshot(run) == before
