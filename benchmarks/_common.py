"""Shared helpers of the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: a trial cap no wall-clock-limited search reaches, so its time limit alone ends it (the
#: mnist1d_vs_paper config's own 400 ended a 20-minute search at 15 minutes at c1b7f1e)
NO_CAP = 100_000


def package_state() -> dict:
    """The commit the figures come from, whether the package had uncommitted changes, and when
    (UTC). Every results JSON records this as its ``package`` entry, the one place a result names
    its commit (``benchmarks/index_results.py`` reads it into ``results/INDEX.md``)."""

    def git(*cmd: str) -> str:
        try:
            out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10)
        except OSError:
            return ""
        return out.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "slimnas_dirty": bool(git("status", "--porcelain", "slimnas")),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def commit_label(package: dict) -> str:
    """``package_state()`` as a report reads it: the short commit, flagged when the package had
    uncommitted changes."""
    return package["commit"][:10] + (" + uncommitted changes" if package["slimnas_dirty"] else "")


def write_results(out: Path, name: str, doc: dict, report: str) -> None:
    """Write a run's results, ``<out>/<name>.json``, and its Markdown ``report`` beside them
    (``<name>.md``), then print the report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str))
    (out / f"{name}.md").write_text(report)
    print(report)


def slimnas_search(config: dict, out: Path, n_trials: int, seed: int) -> dict:
    """``slimnas search`` on the command line, as a user runs it, with ``config`` written beside
    ``out`` as YAML; its ``pareto.json``."""
    import yaml

    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "slimnas", "search", str(path), "--n-trials", str(n_trials), "--seed", str(seed),
           "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads((out / "pareto.json").read_text())


def run_sections(stem: str, sections: list[str], registry: dict, args, result: dict, markdown, t0: float) -> dict:
    """Run the benchmark sections named in ``sections`` (functions ``registry[name](args, work)``
    returning a dict with its ``checks``) in order, each in its own temporary folder, and write
    ``<args.out>/<stem>[_<sections>][_quick].{json,md}`` as soon as each ends; print the report."""
    import json
    import tempfile
    import time

    stem += ("" if sections == list(registry) else "_" + "_".join(sections)) + ("_quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in sections:  # each section's figures are written as soon as it ends
            work = Path(tmp) / name
            work.mkdir()
            started = time.time()
            section = registry[name](args, work)
            result["sections"][name] = section
            result["checks"].update({f"{name}: {k}": v for k, v in section["checks"].items()})
            result["section_seconds"][name] = round(time.time() - started, 1)
            result["seconds"] = round(time.time() - t0, 1)
            (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str))
            (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))
    return result
