"""The HTML report in a real headless Chromium, offline: the front plots render one point per
front member, and the page logs nothing to the console (no JavaScript error, no warning).

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it). Without it these tests
skip, unless ``SLIMNAS_REQUIRE_CHROMIUM=1`` (CI), where a missing browser fails them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from slimnas.report import FRONT_TRACE, write_report

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


def render(chromium: str, page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """``(DOM after the scripts ran, console messages)`` of ``page`` in headless Chromium with
    the network cut off (every host name resolves to nothing)."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
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


def test_the_console_check_catches_a_script_error(chromium, tmp_path):
    """The check above can fail: a page whose script throws shows up in the console messages."""
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = render(chromium, page, tmp_path)
    assert any("undefinedFunction" in line for line in console), console
