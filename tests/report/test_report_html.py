"""The HTML report in a real headless Chromium, offline: the front plots render one point per
front member, the page logs nothing to the console (no JavaScript error, no warning), and the
laid-out page (measured in the browser with getBoundingClientRect) keeps every legend off the
data area and every plot's toolbar off its title.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it). Without it these tests
skip, unless ``SLIMNAS_REQUIRE_CHROMIUM=1`` (CI), where a missing browser fails them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from slimnas.report._figures import FRONT_TRACE
from slimnas.report._report import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# Chromium logs a page's console messages (console.log/warn/error, uncaught exceptions) as
# "...:INFO:CONSOLE(<line>)] "<message>", source: <url> (<line>)" (older builds: CONSOLE(<line>))
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if path is None:
        if os.environ.get("SLIMNAS_REQUIRE_CHROMIUM") == "1":
            pytest.fail("SLIMNAS_REQUIRE_CHROMIUM=1 but no Chromium is installed (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


def render(chromium: str, page: Path, tmp_path: Path, *extra: str) -> tuple[str, list[str]]:
    """``(DOM after the scripts ran, console messages)`` of ``page`` in headless Chromium with
    the network cut off (every host name resolves to nothing), in a 1280 px wide window."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", "--virtual-time-budget=10000", *extra,
           "--dump-dom", page.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "</html>" in r.stdout, r.stderr[-2000:]
    return r.stdout, [m.group(1) for m in map(CONSOLE.search, r.stderr.splitlines()) if m]


class PlotPoints(HTMLParser):
    """Marker points per scatter trace of each plot: ``{div id: [points of trace 0, 1, ...]}``.

    The dumped DOM closes every SVG element explicitly, so a stack of open elements tells which
    plot and which trace (``<g class="trace scatter">``) a ``<path class="point">`` is in.
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.points: dict[str, list[int]] = {}
        self.open: list[str | None] = []  # per open element: the plot id it starts, else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        plot = next((p for p in reversed(self.open) if p), None)
        if tag == "div" and "plotly-graph-div" in classes:
            self.points[a["id"]] = []
        elif plot is not None and tag == "g" and {"trace", "scatter"} <= set(classes):
            self.points[plot].append(0)
        elif plot is not None and tag == "path" and "point" in classes:
            self.points[plot][-1] += 1
        if tag not in self.VOID:
            self.open.append(a["id"] if tag == "div" and "plotly-graph-div" in classes else None)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.open:
            self.open.pop()


def test_the_report_renders_the_front_offline_without_console_errors(chromium, joint_run, tmp_path):
    files = write_report(joint_run.run_dir, tmp_path / "report")
    dom, console = render(chromium, files.html, tmp_path)
    assert console == [], console
    parser = PlotPoints()
    parser.feed(dom)
    fronts = {k: v for k, v in parser.points.items() if k.startswith("front-")}
    assert set(fronts) == {"front-macs", "front-bytes", "front-latency_ms"}
    n_front = len(files.data["front"])
    trained = [r for r in files.data["trials"] if r["state"] in ("complete", "pruned") and not r["front"]]
    for plot, traces in fronts.items():
        cost = plot.removeprefix("front-")
        n_base = sum(1 for b in files.data["baselines"] if cost in b["metrics"])
        # plotly draws no group for an empty trace: the grey trials' one is missing when every
        # trained trial is on the front
        expected = ([len(trained)] if trained else []) + [n_front] + ([n_base] if n_base else [])
        assert traces == expected, (plot, traces, expected)
        assert traces[FRONT_TRACE if trained else FRONT_TRACE - 1] == n_front
    assert len(parser.points["progress"]) >= 2  # best so far, each trial (and hypervolume)


# Run in the page once plotly has drawn: the boxes (left, top, right, bottom) of each plot's data
# area, legend, title, x-axis title and toolbar, written into the DOM as JSON for --dump-dom.
GEOMETRY = """<script>window.addEventListener("load", () => setTimeout(() => {
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
                        return r.width && r.height ? [r.left, r.top, r.right, r.bottom] : null; };
  const out = {};
  for (const d of document.querySelectorAll(".plotly-graph-div")) {
    out[d.id] = {div: box(d), plot: box(d.querySelector(".draglayer .nsewdrag")), legend: box(d.querySelector("g.legend")),
                 title: box(d.querySelector(".g-gtitle .gtitle")), xtitle: box(d.querySelector(".g-xtitle .xtitle")),
                 modebar: box(d.querySelector(".modebar")), points: d.querySelectorAll("path.point").length};
  }
  const pre = document.createElement("pre"); pre.id = "geometry"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 500));</script>"""


def geometry(chromium: str, page: Path, tmp_path: Path) -> dict[str, dict]:
    """Per plot (by div id): the boxes of its parts as laid out in Chromium, and its point count."""
    probe = tmp_path / f"{page.stem}-probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", GEOMETRY + "</body>"), encoding="utf-8")
    dom, console = render(chromium, probe, tmp_path)
    assert console == [], console
    found = re.search(r'<pre id="geometry">(.*?)</pre>', dom, re.S)
    assert found, "the geometry script did not run"
    return json.loads(found.group(1).replace("&quot;", '"'))


def overlap(a: list[float] | None, b: list[float] | None) -> bool:
    """Whether two boxes share any area (a missing box shares none)."""
    return a is not None and b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def assert_laid_out(plots: dict[str, dict]) -> None:
    """No legend on the data area or the x-axis title, no toolbar over a title, each inside its plot."""
    for name, g in plots.items():
        assert g["title"] is not None and g["modebar"] is not None and g["plot"] is not None, (name, g)
        assert not overlap(g["modebar"], g["title"]), (name, "the toolbar overprints the title", g)
        assert not overlap(g["title"], g["plot"]), (name, g)
        for part in ("legend", "xtitle", "title", "modebar"):
            if g[part] is not None:
                box, div = g[part], g["div"]
                assert div[0] - 1 <= box[0] and box[2] <= div[2] + 1 and div[1] - 1 <= box[1] and box[3] <= div[3] + 1, \
                    (name, part, "outside its plot", g)
        if g["legend"] is not None:
            assert not overlap(g["legend"], g["plot"]), (name, "the legend covers the data area", g)
            assert not overlap(g["legend"], g["xtitle"]), (name, "the legend covers the x-axis title", g)


def test_legends_and_toolbars_stay_off_the_points_and_titles(chromium, joint_run, tmp_path):
    """Three front plots share a row: each one's legend is under its data area and its toolbar
    beside (above) its title, in the page as Chromium lays it out."""
    files = write_report(joint_run.run_dir, tmp_path / "report")
    plots = geometry(chromium, files.html, tmp_path)
    fronts = [k for k in plots if k.startswith("front-")]
    assert len(fronts) == 3
    rows = {round(plots[k]["div"][1]) for k in fronts}
    assert len(rows) == 1, "the three front plots share one row"
    assert all(plots[k]["legend"] is not None for k in [*fronts, "progress"]), plots
    assert_laid_out(plots)


def test_an_infeasible_run_plots_its_closest_trials_against_the_budget(chromium, infeasible_run, tmp_path):
    files = write_report(infeasible_run.run_dir, tmp_path / "report")
    assert files.data["front"] == [] and files.data["closest"]
    plots = geometry(chromium, files.html, tmp_path)
    assert {"front-macs", "front-bytes"} <= set(plots)
    assert plots["front-macs"]["points"] == len(files.data["closest"])
    assert_laid_out(plots)
    html = files.html.read_text()
    assert "No model meets the budget (macs&lt;=10)" in html


def test_the_report_of_a_compress_output_renders_its_decisions(chromium, compress_outputs, tmp_path):
    files = write_report(compress_outputs["auto"], tmp_path / "report")
    plots = geometry(chromium, files.html, tmp_path)
    assert set(plots) == {"layers", "sensitivity"}
    assert_laid_out(plots)


def test_the_console_check_catches_a_script_error(chromium, tmp_path):
    """The check above can fail: a page whose script throws shows up in the console messages."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = render(chromium, page, tmp_path)
    assert any("undefinedFunction" in line for line in console), console


def test_the_layout_check_catches_an_overlap():
    """The checks above can fail: a legend on the data area, a toolbar on a title."""
    good = {"div": [0, 0, 400, 460], "plot": [70, 74, 380, 374], "legend": [0, 430, 200, 450],
            "title": [12, 30, 200, 50], "xtitle": [200, 400, 250, 415], "modebar": [300, 2, 398, 26]}
    assert_laid_out({"ok": good})
    for bad in ({"legend": [80, 80, 200, 120]}, {"modebar": [100, 30, 398, 54]}, {"legend": [190, 398, 260, 420]}):
        with pytest.raises(AssertionError):
            assert_laid_out({"bad": {**good, **bad}})
