"""Hostile input, generated: malformed configs and broken data files. Every case exits 2 with one
line naming what is wrong, no traceback, and an existing run folder stays byte-for-byte as it was."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import sys
from collections import Counter
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
                                   "csv_empty", "csv_ragged", "csv_nan", "csv_no_label", "csv_continuous",
                                   "continuous", "many_values", "nan_label", "no_features", "complex", "scalar_x",
                                   "scalar_y"]))
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
        elif defect == "csv_no_label":
            rows[7] = "0.5,3,"
        elif defect == "csv_continuous":  # a regression target: refused, the task is classification
            rows = rows[:1] + [f"{i * 0.1:.2f},{i % 7},{np.sin(i) * 100:.3f}" for i in range(n)]
        else:
            rows[4] = "nan,1,0"
        return ".csv", "\n".join(rows).encode()
    if n < 10 and defect not in ("missing", "bytes", "object", "tiny", "scalar_x", "scalar_y"):
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
    elif defect == "continuous":
        arrays["y"] = y + rng.uniform(0.01, 0.99, len(y))
    elif defect == "many_values":  # integers, nearly one per sample (diabetes targets saved as whole numbers)
        arrays["y"] = rng.permutation(len(y)) + draw(st.integers(0, 10**6))
    elif defect == "nan_label":
        arrays["y"] = y.astype(float)
        arrays["y"][draw(st.integers(0, len(y) - 1))] = np.nan
    elif defect == "no_features":
        arrays["x"] = np.zeros((len(y), 0))
    elif defect == "complex":
        arrays["x"] = x + 1j * rng.normal(size=x.shape)
    elif defect in ("scalar_x", "scalar_y"):
        arrays["x" if defect == "scalar_x" else "y"] = np.array(draw(st.floats(-1e3, 1e3)))
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


# Configs of extreme sizes and YAML built to hang or exhaust the reader: refused at validation, in
# one line, with exit 2, before anything is built or written (issue 46, item 10).

N_EXTREME, N_YAML = 60, 20
HUGE = st.integers(10**15, 10**30)
SIZES = [  # (dotted key, values past its bound)
    ("seed", st.integers(2**31, 2**64)), ("data.seed", st.integers(2**31, 2**64)),
    ("epochs", st.integers(100_001, 10**15)), ("training.epochs", st.integers(100_001, 10**15)),
    ("threads", st.integers(1025, 10**9)), ("n_workers", st.integers(257, 10**9)),
    ("measure.latency_repeats", st.integers(10_001, 10**12)), ("measure.latency_batch", st.integers(65_537, 10**12)),
    ("measure.threads", st.integers(1025, 10**9)), ("data.num_workers", st.integers(257, 10**9)),
    ("space.mlp.width", st.integers(1_000_001, 10**15)), ("space.mlp.n_layers", st.integers(1001, 10**9)),
    ("space.mlp.width", st.lists(HUGE, min_size=1, max_size=3)), ("training.batch_size", HUGE),
    ("space.mlp.dropout", st.just(float("nan"))), ("timeout", st.just(float("inf"))),
    ("trial_timeout", st.just(float("inf"))), ("fitness.weight", st.just(float("inf"))),
    ("budget", st.sampled_from([["macs<=1e999"], ["bytes<=1e308KB"], ["params<=1e400"], ["latency_ms<=1e999"]])),
    ("space.family", st.just(["transformer"])),  # with heads above the smallest dim (set below)
    ("space.mlp", st.fixed_dictionaries({"n_layers": st.integers(300, 1000), "width": st.integers(20_000, 10**6)})),
]


def set_key(cfg: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


@st.composite
def hostile_yaml(draw) -> bytes:
    """A config file whose YAML itself is hostile: an alias bomb, an alias inside its own anchor,
    nesting past the limit, or bytes that are not text; placed where a valid config has a value."""
    kind = draw(st.sampled_from(["bomb", "cycle", "deep_list", "deep_map", "binary"]))
    if kind == "binary":
        raw = draw(st.binary(min_size=0, max_size=200))
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.sampled_from([b"\x80", b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + raw[cut:]
    if kind == "bomb":
        fan = draw(st.integers(3, 12))
        levels = next(n for n in range(2, 40) if fan**n > 100_000) + draw(st.integers(0, 3))
        rows = [f"&l0 [{', '.join(['lol'] * fan)}]"]
        rows += [f"&l{i} [{', '.join([f'*l{i - 1}'] * fan)}]" for i in range(1, levels)]
        value = f"[{', '.join(rows)}]"
    elif kind == "cycle":
        value = draw(st.sampled_from(["&c [*c]", "&c {a: *c}", "&c [1, [2, *c]]"]))
    elif kind == "deep_list":
        depth = draw(st.integers(65, 3000))
        value = "[" * depth + "]" * depth
    else:
        depth = draw(st.integers(65, 1500))
        value = "{a: " * depth + "1" + "}" * depth
    cfg = json.loads(json.dumps(VALID))
    set_key(cfg, draw(st.sampled_from(["data.options.x", "strategy.options.x", "space.mlp.width", "training.lr",
                                       "name", "budget"])), "PLACE")
    return yaml.safe_dump(cfg).replace("PLACE", value).encode()


@st.composite
def extreme_configs(draw) -> bytes:
    """A valid config with one value past its bound (a size, a seed, a non-finite number)."""
    cfg = json.loads(json.dumps(VALID))
    key, values = draw(st.sampled_from(SIZES))
    set_key(cfg, key, draw(values))
    if key == "space.family":
        dims = draw(st.lists(st.integers(1, 64), min_size=1, max_size=3))
        set_key(cfg, "space.transformer", {"dim": dims, "heads": draw(st.integers(min(dims) + 1, 256)), "depth": 1})
    return yaml.safe_dump(cfg).encode()


YAML_COMMANDS = {  # how each command that reads a YAML file is given one
    "search": lambda path, out: ["search", path, "--out", out, "--quiet"],
    "compress": lambda path, out: ["compress", "--model", "torch.nn:Identity", "--data-config", path, "--prune", "0.5",
                                   "--out", out, "--quiet"],
    "device profile": lambda path, out: ["device", "profile", "--config", path, "--out", f"{out}/p.yaml"],
}
TRIED: Counter = Counter()
REFUSED: Counter = Counter()


def check_hostile_file(existing_run: Path, folder: Path, content: bytes, command: str) -> None:
    """``command`` on the file: exit 2, one line, the existing run and a new --out untouched."""
    path = folder / "c.yaml"
    path.write_bytes(content)
    TRIED[command] += 1
    fresh = folder / "new-run"
    for out in (existing_run, fresh):
        check_refused(YAML_COMMANDS[command](str(path), str(out)), existing_run)
        assert not fresh.exists()
    REFUSED[command] += 1


@settings(max_examples=N_EXTREME, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=extreme_configs())
def test_configs_of_extreme_sizes_are_one_line_and_change_nothing(existing_run, tmp_path_factory, content):
    check_hostile_file(existing_run, tmp_path_factory.mktemp("extreme"), content, "search")


@settings(max_examples=N_YAML, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=hostile_yaml())
def test_hostile_yaml_is_refused_before_it_is_expanded(existing_run, tmp_path_factory, content):
    for command in YAML_COMMANDS:  # every command that reads a YAML file the user names
        check_hostile_file(existing_run, tmp_path_factory.mktemp("yaml"), content, command)


def test_the_extreme_cases_ran_and_each_was_refused():
    """Per command: the cases tried and how many ended in one line and exit 2 (all of them)."""
    print(f"\nhostile configs, tried / refused in one line with exit 2: {dict(TRIED)} / {dict(REFUSED)}")
    assert TRIED == REFUSED and TRIED["search"] >= N_EXTREME // 2 and min(TRIED.values()) >= N_YAML // 2, TRIED


def test_an_alias_bomb_is_refused_by_the_command_in_seconds(tmp_path):
    """The real process: nine levels of nine aliases (387 million values expanded) under a key a
    search reads; refused from the parser's events, nothing written."""
    rows = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    rows += [f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    (tmp_path / "bomb.yaml").write_text(f"data: {{dataset: digits}}\nspace:\n  mlp: {{width: [{', '.join(rows)}]}}\n")
    r = subprocess.run([sys.executable, "-m", "slimnas", "search", str(tmp_path / "bomb.yaml"), "--out",
                        str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: config: expected YAML of at most 100,000 values with its aliases expanded")
    assert not (tmp_path / "run").exists()


def test_a_regression_target_is_refused_as_not_classification(tmp_path, cli_here):
    """scikit-learn's diabetes data (its targets are whole numbers from 25 to 346) trained as 214
    classes and exited 0; now the command says the task is classification and what labels are."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    np.savez(tmp_path / "diabetes.npz", x=x, y=y)
    r = cli_here("search", "--dataset", str(tmp_path / "diabetes.npz"), "--n-trials", "1", "--epochs", "1",
                 "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "214 distinct numbers for 353 samples" in r.stderr or "214 distinct numbers for 442 samples" in r.stderr
    assert "the task is classification: labels must be class ids, integers 0..K-1" in r.stderr
    assert not (tmp_path / "run").exists()


def test_user_code_that_calls_sys_exit_fails_the_command_in_one_line(tmp_path, monkeypatch):
    """A model factory (or a plug-in) calling sys.exit(0) ended compress with exit 0 and nothing
    said; it is the user's code failing: one line, exit 2, no output folder."""
    (tmp_path / "net.py").write_text("import sys\ndef build():\n    sys.exit(0)\n")
    code, err = run(["compress", "--model", f"{tmp_path / 'net.py'}:build", "--prune", "0.5", "--out",
                     str(tmp_path / "out")])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --model: expected a callable that builds the model") and "sys.exit(0)" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "fwd.py").write_text("import sys, torch\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                                     "        sys.exit(3)\ndef build():\n    return Net()\n")
    code, err = run(["compress", "--model", f"{tmp_path / 'fwd.py'}:build", "--prune", "0.5", "--out",
                     str(tmp_path / "out")])
    assert code == 2 and err.count("\n") == 1 and "it called sys.exit(3)" in err, err
    assert not (tmp_path / "out").exists()
    (tmp_path / "plug.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.setenv("SLIMNAS_PLUGINS", str(tmp_path / "plug.py"))
    code, err = run(["runs", str(tmp_path)])
    assert code == 2 and err == f"error: SLIMNAS_PLUGINS: expected plug-ins that import, got " \
                                 f"'{tmp_path / 'plug.py'} (it called sys.exit(0))'\n", err


def test_a_space_is_sized_before_any_candidate_is_built():
    """The largest candidate is built on the meta device: parameters past the bound (wide layers)
    and MACs past it (few parameters on large images) are refused, naming the bound."""
    from slimnas.errors import ConfigError
    from slimnas.spaces import SearchSpace
    from slimnas.study._sizes import check_space_size

    wide = SearchSpace.from_config({"family": ["mlp"], "mlp": {"n_layers": [1, 3], "width": [8, 40_000]}})
    with pytest.raises(ConfigError, match=r"^space.mlp: expected a space whose largest candidate has at most "
                                          r"100,000,000 parameters \(its largest choices give 3,202,120,010; narrow"):
        check_space_size(wide, (1, 40), 10)
    convs = SearchSpace.from_config({"family": ["cnn"], "cnn": {"n_layers": 3, "channels": [8, 256], "stride": 1,
                                                                 "kernel": 3, "pool": "none"}})
    with pytest.raises(ConfigError, match=r"^space.cnn: expected a space whose largest candidate has at most "
                                          r"100,000,000,000 MACs per sample"):
        check_space_size(convs, (3, 1024, 1024), 10)
    check_space_size(convs, (3, 32, 32), 10)  # the same space on small images is fine


@pytest.mark.parametrize(("argv", "line"), [
    (["--n-trials", str(10**12)], "error: n_trials: expected an integer in 1..1,000,000, got 1000000000000\n"),
    (["CONFIG", "--n-trials", "3"], "error: strategy.population_size: expected an integer in 2..100,000, "
                                    "got 1000000000\n"),
])
def test_trial_counts_and_population_sizes_are_bounded_at_validation(tmp_path, argv, line):
    """`--n-trials 10**12` (or `n_trials:` in a config) and a population of 10**9 were accepted and
    ran on until killed; both are refused in one line before the data is read or a folder written
    (a dataset that does not exist shows the bound is checked first)."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**VALID, "strategy": {"name": "nsga2", "population_size": 10**9}}))
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    code, err = run(["search", *argv, "--dataset", str(tmp_path / "missing.npz"), "--epochs", "1",
                     "--out", str(tmp_path / "run"), "--quiet"])
    assert (code, err) == (2, line)
    assert not (tmp_path / "run").exists()
    from slimnas.config import load_config
    from slimnas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^n_trials: expected an integer in 1\.\.1,000,000"):
        load_config(n_trials=1_000_001)
    assert load_config(n_trials=1_000_000, strategy="nsga2").n_trials == 1_000_000


@pytest.mark.parametrize(("dataset", "options", "line"), [
    ("shapes32", {"n": 10**12}, "data.options.n: expected an integer in 10..100,000, got 1000000000000"),
    ("text", {"n": 2_000_000}, "data.options.n: expected an integer in 10..1,000,000, got 2000000"),
    ("shapes32", {"noise": float("nan")}, "data.options.noise: expected finite numbers (an option of the 'shapes32' "
                                          "dataset), got nan"),
    ("shapes32", {"noise": 50.0}, "data.options.noise: expected a finite number in [0, 10], got 50.0"),
    ("shapes32", {"distractors": 10**9}, "data.options.distractors: expected an integer in 0..100, got 1000000000"),
    ("text", {"seed": 2**40}, "data.options.seed: expected an integer in 0..2,147,483,647, got 1099511627776"),
])
def test_a_generated_datasets_options_are_bounded(tmp_path, dataset, options, line):
    """`data.options: {n: 10**12}` for a generated dataset ran until memory ran out, a NaN noise
    trained on NaN images: each option is refused in one line naming it and what is allowed,
    before anything is generated or a folder written."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**VALID, "data": {"dataset": dataset, "options": options}}))
    code, err = run(["search", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    assert (code, err) == (2, f"error: {line}\n")
    assert not (tmp_path / "run").exists()


def test_a_formats_options_are_finite_and_an_image_size_is_bounded(tmp_path):
    """The image-folder format resized every image to `size: 1000000` (a terabyte per image);
    any format's option that is a non-finite number is refused by the registry, naming it."""
    from PIL import Image

    from slimnas.data import load_dataset
    from slimnas.errors import ConfigError

    for label in ("cat", "dog"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((8, 8), 30 * i, np.uint8)).save(tmp_path / "img" / label / f"{i}.png")
    with pytest.raises(ConfigError, match=r"^data\.options\.size: expected an image size: an integer or "
                                          r"\[height, width\], each in 1\.\.4,096, got 1000000$"):
        load_dataset(str(tmp_path / "img"), options={"size": 10**6})
    with pytest.raises(ConfigError, match=r"^data\.options\.size: expected finite numbers \(an option of the "
                                          r"image-folder format\), got \[inf, 8\.0\]$"):
        load_dataset(str(tmp_path / "img"), options={"size": [float("inf"), 8.0]})
    assert load_dataset(str(tmp_path / "img"), options={"size": 16}).input_shape == (1, 16, 16)
