"""Run every example command of the docs and write its real output where the docs show it.

    python docs/_gen/run_examples.py            # all examples (a few minutes on 2 cores)
    python docs/_gen/run_examples.py report load  # some of them (and the ones they need first)
    python docs/_gen/run_examples.py --readme     # only copy the snippets into README.md

Each example is one or more shell commands, run in order in one scratch folder (so ``runs/tour``
from the search is there for the report), as a user would type them from the repository root:
``slimnas`` is this checkout's package, ``examples/`` is the repository's. The output (stdout and
stderr, as a pipe sees it) is written to ``docs/_snippets/<name>.txt``, which the pages include,
and into README.md wherever a ``<!-- example: <name> -->`` line comes before a ``console`` block.
Outputs change from run to run only in their timings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SNIPPETS = REPO / "docs" / "_snippets"
README = REPO / "README.md"


@dataclass(frozen=True)
class Example:
    commands: tuple[str, ...]
    #: files copied into the folder first: name there -> file in docs/_gen/ (the pages include it)
    files: dict[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # examples whose files this one reads (run first when it is run alone)


#: name -> example, in the order they run
EXAMPLES: dict[str, Example] = {
    "search": Example(("slimnas search --dataset digits --n-trials 6 --epochs 3 --seed 0 --name tour",)),
    "runs": Example(("slimnas runs",), needs=("search",)),
    "report": Example(("slimnas report runs/tour",), needs=("search",)),
    "export": Example(('slimnas export runs/tour --best "" --format onnx-int8 --out tour.onnx',), needs=("search",)),
    "export-budget": Example(('slimnas export runs/tour --best "macs<=3000" --format torchscript --out tour.pt',),
                             needs=("search",)),
    "load": Example(("python -c \"import slimnas; print(slimnas.load('runs/tour', best=''))\"",), needs=("search",)),
    "compress": Example(("slimnas compress --model examples/mnist1d_cnn.py:build --train-epochs 5 --prune 0.3 "
                         "--distill --quantize int8 --finetune-epochs 8 --quiet --out runs/cnn-small",)),
    "auto": Example(('slimnas compress --model examples/mnist1d_cnn.py:build --train-epochs 5 --auto '
                     '--budget "macs<=50%" --n-trials 6 --finetune-epochs 1 --final-epochs 3 --quiet --out runs/cnn-auto',)),
    "compress-progress": Example(("slimnas compress --model examples/mnist1d_cnn.py:build --train-epochs 3 "
                                  "--prune 0.5 --quantize int8 --finetune-epochs 2 --out runs/cnn-progress | head -12",)),
    "progress": Example(("slimnas search --dataset digits --n-trials 6 --epochs 3 --seed 0 --name my-study "
                         "--tensorboard > log.txt", "head -5 log.txt")),
    "wine": Example(("python -c \"import numpy as np; from sklearn.datasets import load_wine; "
                     "w = load_wine(); np.savez('wine.npz', x=w.data, y=w.target)\"",
                     "slimnas search wine.yaml --n-trials 6 --seed 0 --name wine"), {"wine.yaml": "wine.yaml"}),
    "wine-export": Example(('slimnas export runs/wine --best "" --out wine.onnx',), needs=("wine",)),
    "nhwc": Example(("slimnas compress --model nhwc.py:build --dataset digits-images --prune 0.5 --finetune-epochs 1 --quiet",
                     "slimnas compress --model nhwc.py:build --dataset digits-images --input-layout channels_last "
                     "--prune 0.5 --train-epochs 10 --finetune-epochs 3 --quiet --out runs/nhwc"), {"nhwc.py": "nhwc.py"}),
    "device": Example(("slimnas device list", "slimnas device show mcu")),
    "supernet": Example(("slimnas search supernet.yaml --n-trials 4 --out runs/digits-supernet",
                         "slimnas search supernet.yaml --n-trials 6 --out runs/digits-supernet"),
                        {"supernet.yaml": "supernet.yaml"}),
}


def setup(folder: Path) -> dict[str, str]:
    """A folder laid out as the repository root for the commands, and their environment."""
    (folder / "examples").symlink_to(REPO / "examples")
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, line in (("slimnas", f'exec "{sys.executable}" -m slimnas "$@"'), ("python", f'exec "{sys.executable}" "$@"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{line}\n")  # a script, not a link: a link loses the venv
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.pop("COLUMNS", None)
    return env


def run(name: str, example: Example, folder: Path, env: dict[str, str]) -> str:
    for name, source in example.files.items():
        shutil.copy(HERE / source, folder / name)
    out = []
    for command in example.commands:
        r = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        text = (r.stdout + r.stderr).rstrip()
        out.append(f"$ {command}" + (f"\n{text}" if text else ""))
    return "\n".join(re.sub(r"[ \t]+$", "", line) for line in "\n".join(out).splitlines()) + "\n"


def update_readme(outputs: dict[str, str]) -> None:
    """Put each example's output into README.md's console block after its marker."""
    text = README.read_text()

    def replace(m: re.Match) -> str:
        name = m.group(1)
        return m.group(0) if name not in outputs else f"<!-- example: {name} -->\n```console\n{outputs[name]}```"

    README.write_text(re.sub(r"<!-- example: ([\w-]+) -->\n```console\n.*?```", replace, text, flags=re.S))


def main(argv: list[str]) -> int:
    if argv == ["--readme"]:
        update_readme({n: (SNIPPETS / f"{n}.txt").read_text() for n in EXAMPLES if (SNIPPETS / f"{n}.txt").exists()})
        return 0
    names = argv or list(EXAMPLES)
    unknown = set(names) - set(EXAMPLES)
    if unknown:
        print(f"unknown examples: {sorted(unknown)}; known: {list(EXAMPLES)}", file=sys.stderr)
        return 2
    SNIPPETS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="slimnas-examples-"))
    try:
        env = setup(folder)
        outputs = {}
        wanted = set(names)
        for name in reversed(EXAMPLES):
            if name in wanted:
                wanted.update(EXAMPLES[name].needs)
        for name in EXAMPLES:  # in order: later examples read earlier runs
            if name not in wanted:
                continue
            outputs[name] = run(name, EXAMPLES[name], folder, env)
            if name in names:
                (SNIPPETS / f"{name}.txt").write_text(outputs[name])
                print(outputs[name], flush=True)
        update_readme({n: o for n, o in outputs.items() if n in names})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
