"""The layout's import rule: subpackages import only the layers below them. Inside the package a
subpackage may import another's private modules where that is simpler (as Optuna's subpackages
do), so each ``__init__`` can list only what users and plug-in authors use; the direction is what
keeps the layers apart. Every import statement counts, lazy ones too."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "slimnas"
#: lowest first; a subpackage may import the ones listed before it (and errors/registry)
LAYERS = ["tasks", "config", "spaces", "models", "data", "training", "export", "measure", "compress", "strategies",
          "study", "report", "cli", "testing"]
SHARED = {"errors", "registry"}  # used by every layer


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import of ``slimnas`` in a file, however deep."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "slimnas":  # from slimnas import compress
                out += [(node.lineno, f"slimnas.{a.name}") for a in node.names]
            elif node.module.startswith("slimnas."):
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("slimnas")]
    return out


def violations(root: Path = ROOT) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if len(parts) < 2 or parts[0] not in LAYERS:
            continue  # the package root (slimnas/__init__.py, __main__.py) sits above every layer
        here = parts[0]
        for line, module in imports(path):
            target = module.split(".")
            if len(target) < 2 or target[1] in SHARED or target[1] == here:
                continue
            other = target[1]
            if other not in LAYERS:
                continue  # a name of the package root (from slimnas import search)
            where = f"{path.relative_to(root.parent)}:{line}"
            if LAYERS.index(other) > LAYERS.index(here):
                problems.append(f"{where}: {here} imports {module} (a layer above it)")
    return problems


def test_layers_are_the_subpackages():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS), "every subpackage has a place in LAYERS"


def test_imports_run_one_way():
    assert violations() == []


def test_a_reversed_import_is_caught_and_a_private_one_below_is_allowed(tmp_path):
    for layer in ("spaces", "compress"):
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    (tmp_path / "spaces" / "_bad.py").write_text("def f():\n    from slimnas.compress._prune import x\n")
    (tmp_path / "compress" / "_fine.py").write_text("from slimnas.spaces._space import SearchSpace\n")
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].endswith("spaces/_bad.py:2: spaces imports slimnas.compress._prune (a layer "
                                                 "above it)"), found


def test_a_subpackage_imported_alone_registers_its_built_in_entries():
    """An ``__init__`` that exports few names still loads every module that registers entries
    (an export format, a metric, a strategy): importing the subpackage alone fills its registries."""
    code = ("import json, slimnas.export as e, slimnas.strategies as s, slimnas.measure as m; "
            "print(json.dumps([e.EXPORT_FORMATS.names(), s.STRATEGIES.names(), m.METRICS.names()]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    formats, strategies, metrics = map(set, json.loads(out))
    assert {"onnx-fp32", "onnx-fp16", "state-dict", "torchscript"} <= formats, formats
    assert {"darts", "evolution", "local", "supernet"} <= strategies, strategies
    assert {"int8_bytes", "ram_bytes", "latency_ms"} <= metrics, metrics


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
