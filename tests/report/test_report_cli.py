"""The commands over a run folder: ``runs``, ``report``, ``export``, ``dashboard`` and
``--version``, through the real entry point; user mistakes are one line and exit code 2."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

import slimnas
from slimnas.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``slimnas ARGS`` run in this process."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version(capsys):
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"slimnas {slimnas.__version__}"


def test_runs_lists_each_run_with_its_best_model(capsys, plain_run, joint_run, tmp_path, monkeypatch):
    for run in (plain_run, joint_run):
        shutil.copytree(run.run_dir, tmp_path / "runs" / run.run_dir.name)
    monkeypatch.chdir(tmp_path)  # short folder names: no column of the table wraps
    code, out, _ = cli(capsys, "runs")
    assert code == 0
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    best = plain_run.front[0]
    assert "complete" in lines["plain"] and "5/5" in lines["plain"]
    assert f"trial {best.trial}: test acc {best.metrics['test_accuracy']:.3f}" in lines["plain"]
    assert "3/3" in lines["joint"] and "runs/joint" in lines["joint"]


def test_report_prints_the_path_of_the_page(capsys, plain_run, tmp_path):
    code, out, _ = cli(capsys, "report", str(plain_run.run_dir), "--out", str(tmp_path))
    assert code == 0 and out.strip().splitlines()[-1] == str(tmp_path / "report.html")
    assert (tmp_path / "report.html").stat().st_size > 1_000_000  # plotly.js inside
    assert json.loads((tmp_path / "report.json").read_text())["run"]["name"] == "plain"


@pytest.mark.parametrize("kind", ["policy", "auto"])
def test_report_of_a_compress_output(capsys, compress_outputs, kind, tmp_path):
    """`slimnas report COMPRESS_OUT`: the before/after figures of compress's report.json, its
    per-layer decisions (policy.json for --auto, the pruned widths otherwise) and sensitivity,
    as HTML and Markdown beside compress's own report.json, which stays as it was."""
    out = tmp_path / kind
    shutil.copytree(compress_outputs[kind], out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, stdout, err = cli(capsys, "report", str(out))
    assert code == 0, err
    assert stdout.strip().splitlines()[-1] == str(out / "report.html")
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name in before} == before
    report = json.loads((out / "report.json").read_text())
    from slimnas.report._report import write_report

    data = write_report(out, tmp_path / "again").data
    rows = {r["key"]: r for r in data["rows"]}
    for key in ("test_accuracy", "params", "macs", "bytes", "latency_ms_b1"):
        assert (rows[key]["before"], rows[key]["after"]) == (report["before"][key], report["after"][key])
    page, md = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "Before and after" in page and f"| MACs / sample | {report['before']['macs']:,} | {report['after']['macs']:,} |" in md
    layers = data["card"]["layers"]
    if kind == "auto":
        policy = json.loads((out / "policy.json").read_text())
        assert [(r["layer"], r["width"], r["kept"]) for r in layers] == [(r["layer"], r["width"], r["kept"])
                                                                         for r in policy["layers"]]
        assert [r.get("precision") for r in layers] == [r["precision"] for r in policy["layers"]]
        assert data["card"]["sensitivity"] == {r["layer"]: r["sensitivity"] for r in policy["layers"]
                                               if r.get("sensitivity")} != {}
        assert 'id="sensitivity"' in page and 'id="layers"' in page
        assert data["run"]["mode"] == "auto" and data["run"]["budget"] == report["budget"]
    else:
        assert {r["layer"]: [r["width"], r["kept"]] for r in layers} == report["steps"]["prune"]["layers"]
        assert data["run"]["mode"] == "policy"
    slower = report["after"]["latency_ms_b1"] > report["before"]["latency_ms_b1"]
    assert ("batch 1" in data["slower"]) == slower and (('id="slower"' in page) == bool(data["slower"]))


def test_export_by_trial_and_by_best(capsys, plain_run, tmp_path):
    trial = plain_run.front[-1].trial
    code, out, _ = cli(capsys, "export", str(plain_run.run_dir), "--trial", str(trial), "--format", "onnx-int8",
                       "--out", str(tmp_path / "m.onnx"))
    assert code == 0 and "top-1 agreement" in out and (tmp_path / "m.onnx").is_file()
    cheapest = min(m.metrics["macs"] for m in plain_run.front)
    code, out, _ = cli(capsys, "export", str(plain_run.run_dir), "--best", f"macs<={cheapest}", "--format",
                       "torchscript", "--out", str(tmp_path / "m.pt"))
    assert code == 0 and "max |diff| 0" in out
    x = torch.randn(4, 1, 8, 8)
    expected = next(m.trial for m in plain_run.front if m.metrics["macs"] == cheapest)
    with torch.no_grad():
        assert torch.equal(torch.jit.load(str(tmp_path / "m.pt"))(x), slimnas.load(plain_run.run_dir, trial=expected)(x))


@pytest.mark.parametrize(("args", "message"), [
    (["export", "{run}/../nowhere", "--trial", "0", "--out", "m.onnx"], "error: run: expected an existing run"),
    (["export", "{run}", "--trial", "99", "--out", "m.onnx"], "error: --trial: expected a trial of"),
    (["export", "{run}", "--trial", "0", "--format", "tflite", "--out", "m.onnx"], "error: --format: expected one of"),
    (["export", "{run}", "--best", "macs<<3", "--out", "m.onnx"], "error: --best: expected '<metric><=<value>"),
    (["export", "{run}", "--best", "macs<=1", "--out", "m.onnx"], "error: --best: expected a budget one of"),
    (["export", "{run}", "--trial", "0", "--best", "", "--out", "m.onnx"], "error: --best: expected either --trial"),
    (["report", "{run}/../nowhere"], "error: run: expected an existing run folder"),
    (["report", "{run}/trials"], "error: run: expected a search run folder"),
    (["runs", "--root", "{run}/../nowhere"], "error: --root: expected an existing folder of runs"),
    (["dashboard", "{run}", "--host", "0.0.0.0"], "error: --host: expected a loopback address"),
    (["dashboard", "{run}", "--host", "example.com"], "error: --host: expected a loopback address"),
])
def test_mistakes_are_one_line_and_exit_2(capsys, plain_run, tmp_path, args, message):
    code, out, err = cli(capsys, *(a.format(run=plain_run.run_dir) for a in args))
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.onnx").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_on_loopback(plain_run):
    pytest.importorskip("optuna_dashboard")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "slimnas", "dashboard", str(plain_run.run_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body, deadline = None, time.monotonic() + 60
        while body is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert body is not None, proc.stdout.read() if proc.poll() is not None else "no answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["plain"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_dashboard_says_how_to_install_it_when_missing(plain_run, monkeypatch):
    from slimnas.errors import ConfigError
    from slimnas.report._dashboard import serve_dashboard

    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # the import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'slimnas\[dashboard\]'"):
        serve_dashboard(plain_run.run_dir, port=_free_port())
