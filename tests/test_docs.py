"""The documentation: the results index covers every result file; the docs site builds without a
warning; the configuration reference lists every schema field; every command of the README's
tour runs as shown."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _index_module():
    spec = importlib.util.spec_from_file_location("index_results", REPO / "benchmarks" / "index_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_result_has_a_commit_a_claim_and_a_line_in_the_index():
    index = _index_module()
    rows, problems = index.rows()
    assert not problems, problems
    listed = set(re.findall(r"^\| `([^`]+)` \|", index.INDEX.read_text(), re.M))
    assert listed == {r["stem"] for r in rows}, "benchmarks/results/INDEX.md is stale: run benchmarks/index_results.py"
    assert {r["status"] for r in rows} == {"current", "superseded"}
