"""One command line: every command's options, walked through the click command that ``slimnas``
runs. The same option name means one thing everywhere (one help, one default, one type),
``search`` and ``compress`` share the training and run options, every help shows its default in
one form, list-valued options take one form, and shared options reach the code they name."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

from slimnas.cli import build_cli, main

TRAINING = {"amp", "accumulate", "threads", "device", "seed"}
# options whose absence means "not used" (a step not taken, a file not given): no default to show
NO_DEFAULT = {"model", "weights", "data_config", "input_layout", "prune", "lowrank", "cluster", "quantize", "step",
              "trial", "best", "config", "storage", "run"}
RUN = {"name", "timeout", "out", "budget", "n_trials", "strategy", "early_stopping", "dataset", "label_column",
       "device_profile", "tensorboard", "quiet"}


def _commands(group, prefix=""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield prefix + name, command


@pytest.fixture(scope="module")
def options() -> dict[str, dict[str, object]]:
    """``{command: {option name: click parameter}}`` of every command, hidden aliases left out."""
    cli = build_cli()
    return {name: {p.name: p for p in cmd.params if p.param_type_name == "option" and not p.hidden}
            for name, cmd in _commands(cli)}


def _signature(p) -> tuple:
    return (p.help, p.default, p.type_descriptor.annotation, p.multiple, tuple(p.opts), tuple(p.secondary_opts))


def test_an_option_is_the_same_in_every_command_that_takes_it(options):
    seen: dict[str, tuple[str, object]] = {}
    shared = 0
    for command, params in options.items():
        for name, p in params.items():
            if name in seen:
                first, sig = seen[name]
                assert _signature(p) == sig, f"--{name}: {command} differs from {first}"
                shared += 1
            else:
                seen[name] = (command, _signature(p))
    assert shared >= 25  # search/compress/device profile/report/export share most of their options


#: shared options whose default is what each command makes, so it differs by command (and says so)
PER_COMMAND_DEFAULT = {"out": "what each command writes", "name": "what each command names",
                       "n_trials": "a search's candidates against --auto's policies"}
COMMANDS = ("search", "compress", "report", "export", "runs", "device", "dashboard")


def test_a_shared_option_has_one_default_that_names_no_command(options):
    """Issue 46, item 18: --early-stopping defaulted to none in search and median in compress
    --auto, and --epochs meant a candidate's training in search and the fine-tune in compress.
    Every option several commands take shows one default, the same for all of them; the few whose
    default is each command's own output are listed, with why."""
    import re

    takers: dict[str, list[str]] = {}
    for command, params in options.items():
        for name in params:
            takers.setdefault(name, []).append(command)
    differing = set()
    for name, commands in takers.items():
        if len(commands) < 2:
            continue
        p = options[commands[0]][name]
        defaults = re.findall(r"\[default: ([^\]]*)\]", " ".join((p.help or "").split()))
        assert len(defaults) <= 1 or name in PER_COMMAND_DEFAULT, (name, defaults)
        if any(re.search(rf"\b{c}\b", d) for d in defaults for c in COMMANDS):
            differing.add(name)
    assert differing == set(PER_COMMAND_DEFAULT), differing
    # compress's fine-tunes say what they are; --epochs is a search's training of each candidate
    assert {"train_epochs", "finetune_epochs", "final_epochs"} <= set(options["compress"])
    assert "epochs" in options["search"] and "epochs" not in options["compress"]


def test_compress_reads_epochs_as_the_former_name_of_finetune_epochs(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    code = _cli("compress", "--model", f"{tmp_path / 'net.py'}:build", "--prune", "0.5", "--epochs", "1",
                "--finetune-epochs", "2")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --epochs: expected --finetune-epochs alone"), err


def test_search_and_compress_share_the_training_and_run_options(options):
    for command in ("search", "compress"):
        assert TRAINING | RUN <= set(options[command]), (command, (TRAINING | RUN) - set(options[command]))


def test_every_help_shows_its_default_one_way(options):
    """``[default: ...]`` (typer's form, or written where the command resolves it), never
    ``(default ...)``; flags that are off unless given and required options have none."""
    cli = build_cli()
    missing = []
    for command, params in options.items():
        ctx = cli.make_context("slimnas", [command.split()[0], "--help"], resilient_parsing=True)
        for name, p in params.items():
            text = " ".join(p.get_help_record(ctx)[1].split())
            assert "(default" not in text, (command, name, text)
            if p.is_flag and not p.secondary_opts and p.default is False:
                continue  # a flag: off unless given
            if p.required or name in NO_DEFAULT:
                continue
            if "[default:" not in text:
                missing.append((command, name, text))
    assert missing == [], "\n".join(map(str, missing))


def test_list_valued_options_are_repeatable_and_split_at_commas(options):
    lists = {(c, n) for c, params in options.items() for n, p in params.items()
             if getattr(p.type_descriptor.annotation, "__origin__", None) is list or p.multiple}
    assert {("search", "objectives"), ("search", "budget"), ("compress", "budget"), ("compress", "precision"),
            ("compress", "importance"), ("device profile", "precision"), ("device profile", "batch"),
            ("device profile", "limit"), ("export", "best"), ("compress", "step")} <= lists
    assert all(options[c][n].multiple for c, n in lists)
    from slimnas.cli._options import split_list

    assert split_list(["macs<=10k, bytes<=8KB", "latency_ms<=1"]) == ["macs<=10k", "bytes<=8KB", "latency_ms<=1"]
    assert split_list(None) == []


NET = textwrap.dedent("""
    import pathlib
    import torch

    def build():
        # what the command set PyTorch's threads to when it built the model
        pathlib.Path(__file__).with_name("threads.txt").write_text(str(torch.get_num_threads()))
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
""")


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return 0


def test_compress_threads_and_name_reach_the_command(tmp_path, monkeypatch, capsys):
    """``--threads 3`` sets PyTorch's threads while compress runs (restored after), ``--name``
    names the output folder under runs/ and its run.json."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(NET)
    before = torch.get_num_threads()
    code = _cli("compress", "--model", "net.py:build", "--train-epochs", "1", "--prune", "0.5", "--epochs", "1",
                "--threads", "3", "--name", "tiny-mlp", "--quiet")
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "threads.txt").read_text() == "3"
    assert torch.get_num_threads() == before
    out = tmp_path / "runs" / "tiny-mlp"
    assert (out / "report.json").is_file() and json.loads((out / "run.json").read_text())["name"] == "tiny-mlp"
    # the same options are refused where they cannot apply, in one line
    code = _cli("compress", "--model", "net.py:build", "--prune", "0.5", "--timeout", "5")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --timeout: expected --auto") and len(err.strip().splitlines()) == 1
    code = _cli("compress", "--model", "net.py:build", "--prune", "0.5", "--threads", "-1")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --threads:"), err


def test_search_training_options_reach_the_recipe(tmp_path, tiny_config, capsys):
    """``search --threads/--amp/--accumulate`` override the config (the saved config.yaml is what
    the trials train with); ``--objectives`` takes the repeatable form too."""
    out = tmp_path / "run"
    code = _cli("search", str(tiny_config()), "--n-trials", "1", "--epochs", "1", "--threads", "2", "--amp",
                "--accumulate", "2", "--objectives", "accuracy", "--objectives", "params", "--out", str(out),
                "--quiet")
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["threads"] == 2 and saved["training"]["accumulate"] == 2 and saved["training"]["amp"] is True
    assert saved["objectives"] == ["accuracy", "params"]


def test_device_profile_reports_progress_into_a_pipe(tmp_path):
    """Not a terminal: no live bar, so each stage is announced by lines as search does."""
    config = tmp_path / "mlp.yaml"  # a dozen operators to time
    config.write_text(yaml.safe_dump({"data": {"dataset": "digits"},
                                      "space": {"family": "mlp", "mlp": {"n_layers": 1, "width": [8, 16]}}}))
    r = subprocess.run([sys.executable, "-m", "slimnas", "device", "profile", "--config", str(config),
                        "--repeats", "5", "--n-calibration", "3", "--n-check", "0", "--precision", "fp32",
                        "--out", str(tmp_path / "p.yaml")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for stage in ("timing operators", "calibrating on models"):
        mine = [ln for ln in lines if ln.startswith(stage + ":")]
        assert mine and mine[0].endswith("0/" + mine[0].split("/")[-1].split()[0] + " ...") and len(mine) >= 2, lines
        done, total = mine[-1].split(":")[1].split()[0].split("/")
        assert done == total, mine
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["precisions"] == ["fp32"]


def test_compress_auto_resumes_with_the_early_stopping_its_study_started_with(tmp_path):
    """--auto's default became search's (none; it was median): a study it started before keeps
    nothing of its rule and resumes with median, the rule its first trials ran under; a new study
    keeps the rule it starts with; one given on the command line wins."""
    import optuna

    from slimnas.study._resume import keep_setting, resumed_setting

    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert resumed_setting(url, "auto", "early_stopping", None, before="median") == (None, None)
    assert not (tmp_path / "study.db").exists()  # looking made no file
    study = optuna.create_study(study_name="auto", storage=url)  # as an --auto before the change left it
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    value, note = resumed_setting(url, "auto", "early_stopping", None, before="median")
    assert value == "median" and "its own --early-stopping median" in note
    assert resumed_setting(url, "auto", "early_stopping", "hyperband", before="median") == ("hyperband", None)
    fresh = optuna.create_study(study_name="new", storage=url)
    assert resumed_setting(url, "new", "early_stopping", None, before="median") == (None, None)  # no trials yet
    keep_setting(fresh, "early_stopping", "none")
    keep_setting(fresh, "early_stopping", "median")  # a resume keeps the first
    assert resumed_setting(url, "new", "early_stopping", None, before="median")[0] == "none"
    assert resumed_setting(url, "new", "early_stopping", None, before="median", default="none") == ("none", None)
