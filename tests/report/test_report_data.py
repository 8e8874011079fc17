"""Report data against the study and the run's files: the numbers a report shows, tested
without a browser."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from conftest import PLAIN_BUDGET
from optuna.trial import TrialState

from slimnas.report._data import report_data
from slimnas.report._figures import (
    FRONT_TRACE,
    front_figures,
    layers_figure,
    progress_figure,
    sensitivity_figure,
)
from slimnas.report._report import write_report
from slimnas.study import feasible, hypervolume_2d, open_run
from slimnas.study import list_runs as list_all_runs
from slimnas.study._record import load_study
from slimnas.study._runs import summarize_run


@pytest.fixture(scope="module")
def plain_data(plain_run):
    return report_data(plain_run.run_dir)


@pytest.fixture(scope="module")
def joint_data(joint_run):
    return report_data(joint_run.run_dir)


def test_the_front_is_pareto_json(plain_run, plain_data):
    pareto = json.loads(plain_run.pareto_path.read_text())
    assert [m["trial"] for m in plain_data["front"]] == [m["trial"] for m in pareto["front"]]
    for shown, stored in zip(plain_data["front"], pareto["front"], strict=True):
        assert shown["metrics"]["test_accuracy"] == stored["metrics"]["test_accuracy"]
        assert shown["metrics"]["macs"] == stored["metrics"]["macs"]
    assert plain_data["run"]["status"] == "complete" and plain_data["run"]["tested"]


def test_every_trial_of_the_study_is_a_row(plain_run, plain_data):
    trials = plain_run.study.trials
    rows = {r["trial"]: r for r in plain_data["trials"]}
    assert sorted(rows) == [t.number for t in trials]
    budget = open_run(plain_run.run_dir).budget
    for t in trials:
        r, metrics = rows[t.number], t.user_attrs["metrics"]
        assert r["metrics"]["macs"] == metrics["macs"]
        assert r["feasible"] == feasible(metrics, budget)
        assert r["front"] == (t.number in {m.trial for m in plain_run.front})
        assert r["state"] == ("skipped" if metrics["trained"] is False else "complete")
    assert any(r["state"] == "skipped" for r in rows.values()), "the budget skips a candidate of this run"


def test_progress_best_so_far_and_hypervolume(plain_run, plain_data):
    points = plain_data["progress"]["points"]
    done = sorted((t for t in plain_run.study.trials if t.state == TrialState.COMPLETE),
                  key=lambda t: t.datetime_complete)
    trained = [t.number for t in done if not t.user_attrs.get("skipped")]  # a skipped one has no accuracy to plot
    assert [p["trial"] for p in points] == trained and len(trained) < len(done)  # completion order
    bests = [p["best"] for p in points if p["best"] is not None]
    hvs = [p["hypervolume"] for p in points]
    assert bests == sorted(bests) and hvs == sorted(hvs)  # never falls
    budget = open_run(plain_run.run_dir).budget
    ok = [t.user_attrs["metrics"] for t in done if feasible(t.user_attrs["metrics"], budget)]
    assert bests[-1] == max(m["val_accuracy"] for m in ok)
    limit = float(PLAIN_BUDGET.split("<=")[1])
    expected = hypervolume_2d([(1 - m["metrics"]["val_accuracy"], m["metrics"]["macs"] / limit) for m in plain_data["front"]],
                              (1.0, 1.0))
    assert hvs[-1] == pytest.approx(expected) and hvs[-1] > 0
    assert plain_data["progress"]["scales"]["macs"]["reference"] == limit


def test_cards_show_the_policy_and_sensitivity_of_each_member(joint_run, joint_data):
    assert [c["trial"] for c in joint_data["cards"]] == [m.trial for m in joint_run.front]
    for c in joint_data["cards"]:
        doc = json.loads((joint_run.run_dir / "trials" / f"{c['trial']:05d}" / "policy.json").read_text())
        assert [r["layer"] for r in c["layers"]] == [r["layer"] for r in doc["layers"]]
        assert [r["ratio"] for r in c["layers"]] == [r["ratio"] for r in doc["layers"]]
        assert {"ratio", "rank", "precision"} <= set(c["columns"])
        assert c["sensitivity"], "front members of a joint search get a sensitivity analysis"
        for layer, curve in c["sensitivity"].items():
            row = next(r for r in doc["layers"] if r["layer"] == layer)
            assert curve == {str(k): v for k, v in row["sensitivity"].items()}
        assert "prune" in c["compression"] and "cluster" in c["compression"]


def test_baselines_are_the_uncompressed_parents(joint_run, joint_data):
    parents = {t.user_attrs["metrics"]["parent_val_accuracy"] for t in joint_run.study.trials}
    assert [b["metrics"]["val_accuracy"] for b in joint_data["baselines"]] == sorted(parents)
    assert joint_data["baselines"][0]["metrics"]["macs"] > max(m.metrics["macs"] for m in joint_run.front)
    assert joint_data["baselines"][0]["trials"] == [t.number for t in joint_run.study.trials]


def test_figures_plot_one_point_per_member_and_the_budget(plain_data, joint_data):
    figs = front_figures(joint_data)
    assert set(figs) == {"macs", "bytes", "latency_ms"}  # a joint search measures latency
    for cost, fig in figs.items():
        front = fig["data"][FRONT_TRACE]
        assert len(front["x"]) == len(joint_data["front"])
        assert front["x"] == [m["metrics"][cost] for m in joint_data["front"]]
        assert all(f"trial {m['trial']}" in t and m["architecture"] in t for m, t in zip(joint_data["front"], front["text"],
                                                                                       strict=True))
    macs = figs["macs"]["layout"]["shapes"]
    assert [s["x0"] for s in macs] == [1500.0]
    assert "parents" in figs["macs"]["data"][-1]["name"] and "shapes" in figs["bytes"]["layout"]
    assert set(front_figures(plain_data)) == {"macs", "bytes"}  # no latency measured
    prog = progress_figure(plain_data)
    assert prog["data"][-1]["y"] == [p["hypervolume"] for p in plain_data["progress"]["points"]]


def test_no_figure_lets_plotly_move_its_margins(joint_data):
    """Auto-margins can redraw in a loop (a console warning in the page, depending on timing):
    every figure has fixed margins; its legend lies flat under the plot area, in the bottom
    margin, which is as high as the legend's rows (the browser tests measure the page)."""
    cards = joint_data["cards"]
    figs = [*front_figures(joint_data).values(), progress_figure(joint_data),
            *(f(c) for c in cards for f in (layers_figure, sensitivity_figure))]
    figs = [f for f in figs if f is not None]
    assert len(figs) > 4 and any("legend" in f["layout"] for f in figs)
    for fig in figs:
        layout = fig["layout"]
        assert layout["margin"]["autoexpand"] is False, layout["title"]
        assert layout["title"]["xanchor"] == "left" and layout["title"]["pad"]["t"] >= 26  # under the toolbar's row
        if layout.get("showlegend", True) and len(fig["data"]) > 1:
            legend = layout["legend"]
            assert (legend["orientation"], legend["yref"], legend["y"], legend["yanchor"]) == ("h", "container", 0, "bottom")
            assert layout["margin"]["b"] >= 58 + 20, layout["title"]  # the x axis, then a row of legend


def test_an_infeasible_run_plots_its_closest_trials(infeasible_run):
    """No model met the budget: the front plots still show every trial, the closest ones in
    the front's place, and the budget's line they all miss."""
    data = report_data(infeasible_run.run_dir)
    assert data["front"] == [] and len(data["closest"]) == 2
    figs = front_figures(data)
    assert set(figs) == {"macs", "bytes"}
    closest = figs["macs"]["data"][FRONT_TRACE]
    assert closest["x"] == [m["metrics"]["macs"] for m in data["closest"]] and "closest" in closest["name"]
    assert [s["x0"] for s in figs["macs"]["layout"]["shapes"]] == [10.0]
    assert all(x > 10 for x in closest["x"])


def test_a_budget_label_on_a_log_axis_sits_at_its_line(infeasible_run):
    """plotly places annotations on a log axis by the log of the value: the label of a limit
    far below the points is placed at log10(limit), not 10 ** limit far right."""
    fig = front_figures(report_data(infeasible_run.run_dir))["macs"]
    assert fig["layout"]["xaxis"]["type"] == "log"
    (label,) = fig["layout"]["annotations"]
    assert label["x"] == pytest.approx(1.0)  # log10(10)


def test_write_report_writes_the_same_figures_three_ways(plain_run, tmp_path):
    files = write_report(plain_run.run_dir, tmp_path)
    stored = json.loads(files.json.read_text())
    assert stored["front"] == json.loads(json.dumps(files.data["front"]))
    md = files.markdown.read_text()
    for m in files.data["front"]:
        assert f"| {m['trial']} | {m['architecture']} |" in md
        assert f"{m['metrics']['test_accuracy']:.3f}" in md
    html = files.html.read_text()
    assert html.count('class="plotly-graph-div"') == 3  # MACs, bytes, progress
    assert linked_resources(html) == []  # nothing to fetch: it opens offline


def linked_resources(html: str) -> list[str]:
    """Every ``src`` and ``href`` of the page's elements (script bodies are not elements)."""
    from html.parser import HTMLParser

    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(v for k, v in attrs if k in ("src", "href") and v)

    Links().feed(html)
    return found


@pytest.fixture
def run_copy(plain_run, tmp_path):
    """A copy of the finished plain run whose study the test may change."""
    dest = tmp_path / "copy"
    shutil.copytree(plain_run.run_dir, dest)
    return dest


def test_a_run_shows_running_interrupted_or_complete(run_copy):
    assert summarize_run(run_copy).status == "complete"
    run = open_run(run_copy)
    study = load_study(run.storage_url, run.name)
    study.ask()  # a trial starts after the run last wrote pareto.json
    assert summarize_run(run_copy).status == "running"
    later = (run_copy / "pareto.json").stat().st_mtime + 3600
    os.utime(run_copy / "pareto.json", (later, later))  # the run ended since: that trial was abandoned
    assert summarize_run(run_copy).status == "complete"
    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    (run_copy / "config.yaml").write_text(yaml.safe_dump({**cfg, "n_trials": 50}))
    summary = summarize_run(run_copy)
    assert summary.status == "interrupted" and (summary.n_done, summary.n_total) == (5, 50)


def test_list_runs_finds_search_and_compress_runs(plain_run, joint_run, tmp_path):
    for run in (plain_run, joint_run):
        shutil.copytree(run.run_dir, tmp_path / run.run_dir.name)
    (tmp_path / "notes").mkdir()
    summaries = {s.name: s for s in list_all_runs(tmp_path)}
    assert set(summaries) == {"plain", "joint"}
    assert summaries["plain"].best["trial"] == plain_run.front[0].trial
    assert summaries["plain"].best["metrics"]["test_accuracy"] == plain_run.front[0].metrics["test_accuracy"]
    assert summaries["joint"].n_done == 3 and summaries["joint"].status == "complete"


def test_a_trial_set_aside_as_damaged_is_not_reported_as_a_trial(tmp_path):
    """A resume sets aside a trial whose files were damaged (the study's damaged_trials) and runs
    its candidate again; the report listed the set-aside trial as a normal complete trial in its
    table, its trial count and its plots. Now only the re-run shows."""
    import contextlib
    import io

    from slimnas.cli import main

    config = {"data": {"dataset": "digits"}, "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
              "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    argv = ["search", str(tmp_path / "c.yaml"), "--n-trials", "2", "--out", str(tmp_path / "run"), "--quiet"]
    for step in ("search", "resume"):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err, \
                pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code in (0, None), err.getvalue()
        if step == "search":
            (tmp_path / "run" / "trials" / "00000" / "metrics.json").write_text("")  # damaged
    assert "0" in load_study(f"sqlite:///{tmp_path / 'run' / 'study.db'}", "digits-tpe").user_attrs["damaged_trials"]
    files = write_report(tmp_path / "run", tmp_path / "report")
    data = report_data(tmp_path / "run")
    assert [r["trial"] for r in data["trials"]] == [1, 2] == [r["trial"] for r in files.data["trials"]]
    assert data["run"]["n_finished"] == 2 and data["run"]["status"] == "complete"
    assert 0 not in [m["trial"] for m in data["front"] + data["closest"]]
    assert [p["trial"] for p in data["progress"]["points"]] == [1, 2]
    assert "| 0 |" not in files.markdown.read_text()
