"""Shrink each slimnas subpackage's public surface (``__all__`` and the ``__init__`` imports) to what
users and plug-in authors use, and point every other importer at the private module that defines
the name. Not a test: the tool that applied the rule, re-runnable after merges
(``python tests/public_surface.py . --dry`` counts; without ``--dry`` it rewrites, then
``ruff check --fix`` sorts the imports).

The rule: a name a subpackage's ``__init__`` exports stays exported when
  1. users are shown it: docs/ (prose and code; backticked names too), README.md, examples/,
     benchmarks/, tests/plugins/ (the plug-in examples), pyproject.toml, the package root
     ``slimnas/__init__.py``; or
  2. it is a plug-in author's contract: a ``Registry``, a ``register_*``/``get_*``/``list_*``/
     ``check_*`` function, a ``Base*`` class, a ``*Context`` class handed to plug-ins, an exception
     class, or (in ``slimnas.config``) a config dataclass.
Everything else is dropped from ``__init__``; code inside the package and tests import it from its
private module (``from slimnas.compress._prune import executed_layers``).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

root = Path(sys.argv[1]).resolve()
dry = "--dry" in sys.argv
sys.path.insert(0, str(root))
pkg = root / "slimnas"
SUBS = sorted(p.parent.name for p in pkg.glob("*/__init__.py"))

from slimnas.registry import Registry  # noqa: E402


def read_init(sub):
    path = pkg / sub / "__init__.py"
    text = path.read_text()
    tree = ast.parse(text)
    source, alls = {}, None
    for n in tree.body:
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(f"slimnas.{sub}."):
            for a in n.names:
                source[a.asname or a.name] = (n.module, a.name)
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets):
            alls = [e.value for e in n.value.elts]
    return path, text, tree, source, alls or []


INITS = {s: read_init(s) for s in SUBS}


def user_names() -> set[tuple[str, str]]:
    out = set()
    exported = {s: set(INITS[s][4]) for s in SUBS}
    owner = {}
    for s, names in exported.items():
        for n in names:
            owner.setdefault(n, set()).add(s)
    texts = [p.read_text() for d in ("docs", "examples", "benchmarks", "tests/plugins") for p in (root / d).rglob("*")
             if p.is_file() and p.suffix in (".md", ".py", ".yml", ".yaml")]
    texts += [(root / f).read_text() for f in ("README.md", "pyproject.toml", "mkdocs.yml", "slimnas/__init__.py")]
    for text in texts:
        for m in re.finditer(r"from slimnas\.(\w+) import \(([^)]*)\)", text):
            out |= {(m.group(1), n.split(" as ")[0].strip()) for n in m.group(2).split(",") if n.strip()}
        for m in re.finditer(r"from slimnas\.(\w+) import ([^(\n]+)", text):
            out |= {(m.group(1), n.split(" as ")[0].strip()) for n in m.group(2).split(",") if n.strip()}
        for m in re.finditer(r"slimnas\.(\w+)\.([A-Za-z_]\w*)", text):
            out.add((m.group(1), m.group(2)))
        for m in re.finditer(r"`([A-Za-z_]\w*)", text):  # a backticked name of the API
            for s in owner.get(m.group(1), ()):
                out.add((s, m.group(1)))
    return out


#: what a plug-in's own code calls beyond its registry (a metric measuring others, a compressor's genes)
CALLED_BY_PLUGINS = {("measure", "measure_metrics"), ("compress", "Gene")}


def contract(sub: str, name: str, obj) -> bool:
    if sub == "testing" or (sub, name) in CALLED_BY_PLUGINS:
        return True  # slimnas.testing is all for plug-in authors
    if isinstance(obj, Registry):
        return True
    if re.match(r"(register|get|list|check)_", name):
        return True
    if inspect.isclass(obj):
        if name.startswith("Base") or name.endswith(("Context", "Spec", "Result")) or issubclass(obj, BaseException):
            return True
        if sub == "config" and dataclasses.is_dataclass(obj):
            return True
    return False


USERS = user_names()
KEEP, MOVED = {}, {}
for sub in SUBS:
    mod = importlib.import_module(f"slimnas.{sub}")
    path, text, tree, source, alls = INITS[sub]
    KEEP[sub] = [n for n in alls if (sub, n) in USERS or contract(sub, n, getattr(mod, n, None)) or n not in source]

# what a kept function returns or takes is kept too (the result of load(), a settings type)
for _ in range(2):
    for sub in SUBS:
        mod = importlib.import_module(f"slimnas.{sub}")
        for n in list(KEEP[sub]):
            obj = getattr(mod, n, None)
            try:
                sig = inspect.signature(obj) if callable(obj) else None
            except (TypeError, ValueError):
                sig = None
            if sig is None:
                continue
            words = set(re.findall(r"[A-Za-z_]\w*", str(sig)))
            for s2 in SUBS:
                for m in INITS[s2][4]:
                    if m in words and m not in KEEP[s2] and m[0].isupper():
                        KEEP[s2].append(m)
for sub in SUBS:
    alls = INITS[sub][4]
    KEEP[sub] = [n for n in alls if n in KEEP[sub]]  # in __all__'s order
    MOVED[sub] = {n: INITS[sub][3][n] for n in alls if n not in KEEP[sub]}


def fmt_import(module: str, names: list[str], indent: str) -> str:
    one = f"{indent}from {module} import {', '.join(names)}"
    if len(one) <= 120:
        return one
    return f"{indent}from {module} import (\n" + "".join(f"{indent}    {n},\n" for n in names) + f"{indent})"


def rewrite_init(sub: str) -> str:
    path, text, tree, source, alls = INITS[sub]
    lines = text.split("\n")
    edits = []
    for n in tree.body:
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(f"slimnas.{sub}."):
            kept = [a for a in n.names if (a.asname or a.name) not in MOVED[sub]]
            names = [a.name if a.asname is None else f"{a.name} as {a.asname}" for a in kept]
            # a module none of whose names stay is still loaded where it was (it registers entries)
            new = fmt_import(n.module, names, "") if kept else \
                f"from slimnas.{sub} import {n.module.rsplit('.', 1)[1]}  # noqa: F401 (loaded as before)"
            if kept and len(kept) == len(n.names):
                continue
            edits.append((n.lineno, n.end_lineno, new))
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets):
            new = "__all__ = [\n" + "".join(f'    "{x}",\n' for x in KEEP[sub]) + "]"
            edits.append((n.lineno, n.end_lineno, new))
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1:end] = new.split("\n")
    return "\n".join(lines)


def rewrite_importers(path: Path, own_sub: str | None) -> str | None:
    text = path.read_text()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    lines = text.split("\n")
    edits = []
    for n in ast.walk(tree):
        if not (isinstance(n, ast.ImportFrom) and n.module and n.level == 0):
            continue
        parts = n.module.split(".")
        if len(parts) != 2 or parts[0] != "slimnas" or parts[1] not in MOVED:
            continue
        sub = parts[1]
        if path == INITS[sub][0]:
            continue
        moved = [a for a in n.names if a.name in MOVED[sub]]
        if not moved:
            continue
        indent = re.match(r"\s*", lines[n.lineno - 1]).group(0)
        kept = [a for a in n.names if a.name not in MOVED[sub]]
        out = []
        if kept:
            out.append(fmt_import(n.module, [a.name if a.asname is None else f"{a.name} as {a.asname}" for a in kept],
                                  indent))
        by_mod = {}
        for a in moved:
            module, real = MOVED[sub][a.name]
            by_mod.setdefault(module, []).append(real if a.asname is None and real == a.name
                                                 else f"{real} as {a.asname or a.name}")
        out += [fmt_import(m, names, indent) for m, names in sorted(by_mod.items())]
        first = lines[n.lineno - 1]
        prefix = first[:n.col_offset]
        if prefix.strip():  # an import after other statements on one line: leave (not expected)
            raise SystemExit(f"{path}:{n.lineno}: import not at the start of its line")
        edits.append((n.lineno, n.end_lineno, "\n".join(out)))
    if not edits:
        return None
    for start, end, new in sorted(edits, reverse=True):
        lines[start - 1:end] = new.split("\n")
    return "\n".join(lines)


if __name__ == "__main__":
    before = sum(len(INITS[s][4]) for s in SUBS)
    after = sum(len(KEEP[s]) for s in SUBS)
    print(f"exported names: {before} -> {after}")
    for s in SUBS:
        print(f"  {s}: {len(INITS[s][4])} -> {len(KEEP[s])}")
    if dry:
        for s in SUBS:
            print(s, "drops:", " ".join(sorted(MOVED[s])))
        sys.exit(0)
    for s in SUBS:
        INITS[s][0].write_text(rewrite_init(s))
    changed = []
    files = [p for d in ("slimnas", "tests", "benchmarks", "examples", "docs") for p in (root / d).rglob("*.py")]
    for p in files:
        new = rewrite_importers(p, None)
        if new is not None:
            p.write_text(new)
            changed.append(p)
    print(f"rewrote imports in {len(changed)} files")
