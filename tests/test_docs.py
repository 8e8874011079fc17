"""The documentation: the results index covers every result file; the docs site builds without a
warning; the configuration reference lists every schema field; every command of the README's
tour runs as shown."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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
    anchors = set(re.findall(r"\{ #([\w-]+) \}", (REPO / "docs" / "benchmarks.md").read_text()))
    assert {r["section"] for r in rows} <= anchors, "a claim names a section docs/benchmarks.md does not have"


def _gen(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_gen_{name}", REPO / "docs" / "_gen" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_docs_build_without_a_warning(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                       cwd=REPO, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr
    config = (tmp_path / "site" / "reference" / "configuration" / "index.html").read_text()
    assert "space.compression.keep_macs" in config and "measure.latency_repeats" in config
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "check_family" in api and "register_family" in api


def test_the_configuration_reference_lists_every_schema_field():
    from slimnas.spaces import FAMILIES, TRAINING_KEYS, list_families

    reference = _gen("config_reference")
    text = reference.render()
    keys = set(re.findall(r"^\| `([\w.]+)` \|", text, re.M))
    fields = reference.schema_fields()
    assert {"seed", "budget", "data.dataset", "data.options", "strategy.early_stopping", "measure.runtime"} <= set(fields)
    assert set(fields) <= keys, sorted(set(fields) - keys)
    for family in list_families():
        assert {f"space.{family}.{k}" for k in FAMILIES.get(family).keys} <= keys, family
    assert {f"training.{k}" for k in TRAINING_KEYS} <= keys
    undocumented = [line for line in text.splitlines() if re.match(r"^\| `(seed|n_trials|device)` ", line)
                    and line.rstrip().endswith("|  |")]
    assert not undocumented, undocumented  # every top-level field says what it does


def _tour() -> list[tuple[str, list[str]]]:
    """The README's tour: (example name, the commands its console block shows)."""
    blocks = re.findall(r"<!-- example: ([\w-]+) -->\n```console\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return [(name, [line[2:] for line in body.splitlines() if line.startswith("$ ")]) for name, body in blocks]


def test_the_readme_is_a_short_front_door_whose_outputs_were_generated():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    examples = _gen("run_examples").EXAMPLES
    tour = _tour()
    assert [name for name, _ in tour] == ["search", "report", "export", "compress"]
    for name, commands in tour:
        assert commands == list(examples[name].commands), f"README's {name} block is not run_examples.py's: rerun it"
        snippet = (REPO / "docs" / "_snippets" / f"{name}.txt").read_text()
        assert snippet in readme, f"README's {name} output is not docs/_snippets/{name}.txt"


def test_every_command_of_the_readme_tour_runs(tmp_path, monkeypatch, capsys):
    """As a new user would type them, in order, from a folder laid out as the repository root."""
    from slimnas.cli import main

    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    for name, commands in _tour():
        for command in commands:
            argv = shlex.split(command)
            assert argv[0] == "slimnas", command
            with pytest.raises(SystemExit) as e:
                main(argv[1:])
            out = capsys.readouterr()
            assert not e.value.code, f"{command}\n{out.out}{out.err}"
            if name == "search":
                assert "Pareto front" in out.out
            if name == "compress":
                assert "after/before" in out.out
    assert (tmp_path / "runs" / "tour" / "report.html").is_file() and (tmp_path / "tour.onnx").is_file()
    assert (tmp_path / "runs" / "cnn-small" / "report.json").is_file()


def test_every_example_output_in_the_docs_is_the_generators():
    """Each ``--8<-- "NAME.txt"`` the pages include is an example of run_examples.py, and the file
    holds that example's commands, in order (it was written by running them, not by hand)."""
    examples = _gen("run_examples").EXAMPLES
    pages = "\n".join(p.read_text() for p in (REPO / "docs").rglob("*.md"))
    included = set(re.findall(r'--8<-- "([\w-]+)\.txt"', pages))
    assert included and included <= set(examples), sorted(included - set(examples))
    for name in examples:
        snippet = (REPO / "docs" / "_snippets" / f"{name}.txt").read_text()
        shown = [line[2:] for line in snippet.splitlines() if line.startswith("$ ")]
        assert shown == list(examples[name].commands), name
