"""Hostile input, generated: malformed configs and broken data files. Every case exits 2 with one
line naming what is wrong, no traceback, and an existing run folder stays byte-for-byte as it was."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimnas.cli import main

N_CONFIGS, N_DATA_FILES = 120, 120
VALID = {
    "name": "digits-tpe", "n_trials": 1, "epochs": 1, "seed": 0,
    "data": {"dataset": "digits", "val_fraction": 0.2},
    "strategy": {"name": "tpe", "early_stopping": "none", "n_startup_trials": 2},
    "objectives": ["accuracy", "macs"],
    "budget": ["macs<=20000"],
    "space": {"family": ["mlp"], "mlp": {"n_layers": 1, "width": [8, 16]}},
    "training": {"lr": 0.01, "optimizer": "adam"},
}
SCALARS = {"n_trials": "int>=1", "epochs": "int>=1", "seed": "int>=0", "timeout": "num>0", "threads": "int>=0",
           "n_workers": "int>=1", "trial_timeout": "num>0"}
WRONG = ["ten", -3, 0, 2.5, True, [1, 2], {"a": 1}]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(argv: list[str]) -> tuple[int, str]:
    """``slimnas`` in this process: (exit code, stderr)."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, err.getvalue()


def invalid(value, kind: str) -> bool:
    if kind.startswith("int"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= int(kind[-1])
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    return not ok


@st.composite
def broken_configs(draw) -> str:
    """A YAML text that is wrong in exactly one place (by construction)."""
    cfg = json.loads(json.dumps(VALID))
    kind = draw(st.sampled_from(["unknown_key", "scalar", "section", "section_key", "value", "yaml"]))
    if kind == "unknown_key":
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
        if key in {"name", "seed", "out", "data", "space", "budget", "device", "epochs", "storage", "timeout",
                   "threads", "strategy", "training", "fitness", "measure", "objectives", "n_trials", "n_workers",
                   "trial_timeout", "skip_infeasible"}:
            key += "_x"
        cfg[key] = draw(st.integers())
    elif kind == "scalar":
        key = draw(st.sampled_from(sorted(SCALARS)))
        cfg[key] = draw(st.sampled_from([v for v in WRONG if invalid(v, SCALARS[key])]))
    elif kind == "section":
        key = draw(st.sampled_from(["data", "strategy", "space", "training", "fitness", "measure"]))
        cfg[key] = draw(st.sampled_from(["tpe", 5, [1, 2], True]))
    elif kind == "section_key":
        path = draw(st.sampled_from(["data", "strategy", "space", "training", "fitness", "measure", "space.mlp"]))
        node = cfg
        for part in path.split("."):
            node = node.setdefault(part, {})
        node[draw(st.sampled_from(["colour", "speed", "lr_max", "widths2"]))] = 1
    elif kind == "value":
        path, value = draw(st.sampled_from([
            ("space.mlp.width", [0]), ("space.mlp.width", "wide"), ("space.family", ["transformerz"]),
            ("space.mlp.n_layers", {"low": 3, "high": 1}), ("training.lr", -1), ("training.optimizer", "rmsprop"),
            ("objectives", ["accuracy", "speed"]), ("objectives", []), ("budget", ["macs<<3"]),
            ("budget", ["flops<=3"]), ("budget", ["macs<=50%"]), ("strategy.name", "annealing"),
            ("strategy.early_stopping", "sometimes"), ("device", "tpu"), ("data.val_fraction", 1.5),
            ("data.dataset", "imagenet"), ("name", "../up"), ("name", "a/b"), ("measure.runtime", "tvm"),
            ("fitness.cost", "accuracy"), ("space.mlp.activation", ["swishy"]), ("storage", "not a url"),
            ("strategy.name", "cmaes"),
        ]))
        *parents, leaf = path.split(".")
        node = cfg
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    else:
        return draw(st.sampled_from(["space: [unclosed\n", "a: b: c\n", "{", "- 1\n- 2\n", "data: {dataset: [x\n",
                                     "\t- tab\n", "key: 'open\n"]))
    return yaml.safe_dump(cfg)


@st.composite
def broken_data_files(draw) -> tuple[str, bytes]:
    """``(suffix, content)`` of a data file that is wrong by construction."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n = draw(st.sampled_from([0, 1, 3, 9, 40]))
    width = draw(st.sampled_from([1, 4]))
    x, y = rng.normal(size=(n, width)), np.arange(n) % 3
    defect = draw(st.sampled_from(["missing", "nan", "inf", "lengths", "wide_y", "one_class", "tiny", "object",
                                   "test_half", "test_width", "bytes", "truncated", "csv_label", "csv_text",
                                   "csv_empty", "csv_ragged", "csv_nan"]))
    if defect.startswith("csv"):
        n = max(n, 20)
        rows = ["a,b,label"] + [f"{i * 0.1:.2f},{i % 7},{i % 2}" for i in range(n)]
        if defect == "csv_label":
            rows[0] = "a,b,target"
        elif defect == "csv_text":
            rows[5] = "x,1,0"
        elif defect == "csv_empty":
            rows = []
        elif defect == "csv_ragged":
            rows[3] = "1,2,3,4,5"
        else:
            rows[4] = "nan,1,0"
        return ".csv", "\n".join(rows).encode()
    if n < 10 and defect not in ("missing", "bytes", "object", "tiny"):
        n, x, y = 40, rng.normal(size=(40, width)), np.arange(40) % 3
    arrays = {"x": x, "y": y}
    if defect == "missing":
        arrays.pop(draw(st.sampled_from(["x", "y"])))
    elif defect in ("nan", "inf"):
        arrays["x"] = x.copy()
        arrays["x"][draw(st.integers(0, len(x) - 1)), 0] = np.nan if defect == "nan" else np.inf
    elif defect == "lengths":
        arrays["y"] = y[:-1]
    elif defect == "wide_y":
        arrays["y"] = np.stack([y, y], 1)
    elif defect == "one_class":
        arrays["y"] = np.zeros(len(x), dtype=int)
    elif defect == "tiny":
        arrays = {"x": rng.normal(size=(draw(st.integers(0, 9)), width)), "y": np.arange(draw(st.integers(0, 9))) % 2}
    elif defect == "object":
        arrays["x"] = np.array([[1, "a"]] * max(n, 10), dtype=object)
        arrays["y"] = np.arange(max(n, 10)) % 2
    elif defect == "test_half":
        arrays["x_test"] = x[:5]
    elif defect == "test_width":
        arrays.update(x_test=rng.normal(size=(10, width + 1)), y_test=np.arange(10) % 3)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    content = buf.getvalue()
    if defect == "bytes":
        content = bytes(draw(st.binary(min_size=0, max_size=64)))
    elif defect == "truncated":
        content = content[: draw(st.integers(0, len(content) - 1))]
    return ".npz", content


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    code, err = run(["search", "--dataset", "digits", "--n-trials", "2", "--epochs", "1", "--out", str(d / "run"),
                     "--quiet"])
    assert code in (0, None), err
    return d / "run"


def check_refused(argv: list[str], run_dir: Path, prefix: str = "error: ") -> str:
    before = snapshot(run_dir)
    code, err = run(argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    assert snapshot(run_dir) == before
    return lines[0]


COUNT = {"configs": 0, "data": 0}


@settings(max_examples=N_CONFIGS, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=broken_configs())
def test_malformed_configs_are_one_line_and_change_nothing(existing_run, tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text)
    check_refused(["search", str(path), "--out", str(existing_run), "--quiet"], existing_run)
    COUNT["configs"] += 1


@settings(max_examples=N_DATA_FILES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_data_files())
def test_broken_data_files_are_one_line_and_change_nothing(existing_run, tmp_path_factory, case):
    suffix, content = case
    path = tmp_path_factory.mktemp("data") / f"d{suffix}"
    path.write_bytes(content)
    check_refused(["search", "--dataset", str(path), "--n-trials", "1", "--epochs", "1", "--out", str(existing_run),
                   "--quiet"], existing_run, prefix="error: data.")
    COUNT["data"] += 1


def test_the_generated_cases_ran():
    """The two properties above ran their cases (the counts go in the record of this suite)."""
    assert COUNT["configs"] >= N_CONFIGS // 2 and COUNT["data"] >= N_DATA_FILES // 2, COUNT
