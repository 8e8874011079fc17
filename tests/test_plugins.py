"""Plug-ins (tests/plugins/, one file each, loaded through SLIMNAS_PLUGINS as a user's would be)
show in the command line's help and run end to end; a broken plug-in is one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from slimnas.compress import list_compressors
from slimnas.measure import list_metrics
from slimnas.strategies import list_strategies


def run_cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "slimnas", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_every_registered_name_shows_in_the_help():
    search_help = run_cli("search", "--help").stdout
    compress_help = run_cli("compress", "--help").stdout
    flat = " ".join(search_help.split()).replace("- ", "-")  # help text wraps after a hyphen: toy- / random
    assert "toy-random" in flat and "energy_mj" in flat  # the plug-ins' entries
    for name in list_strategies() + list_metrics():
        assert name in flat, name
    assert "round" in " ".join(compress_help.split())
    for name in list_compressors():
        assert name in " ".join(compress_help.split()), name


def test_plugins_run_a_search_and_a_compression(tmp_path, tiny_config):
    cfg = tiny_config(objectives=["accuracy", "energy_mj"], budget=["energy_mj<=2uj"],
                      strategy={"name": "toy-random"})
    r = run_cli("search", str(cfg), "--n-trials", "3", "--out", str(tmp_path / "s"), "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((tmp_path / "s" / "pareto.json").read_text())
    assert pareto["objectives"] == ["accuracy", "energy_mj"] and pareto["budget"] == ["energy_mj<=0.002"]
    for m in pareto["front"]:
        assert m["metrics"]["energy_mj"] == m["metrics"]["macs"] * 4.6e-9 <= 0.002
    (tmp_path / "net.py").write_text("import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Flatten(), "
                                     "torch.nn.Linear(40, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))\n")
    r = run_cli("compress", "--model", "net.py:build", "--train-epochs", "1", "--step", "round:step=0.25",
                "--out", str(tmp_path / "c"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "c" / "report.json").read_text())
    assert report["steps"]["round"] == {"step": 0.25}


def test_a_broken_plugin_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('half written')\n")
    r = run_cli("search", "--help", env={"SLIMNAS_PLUGINS": str(tmp_path / "broken.py")})
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: SLIMNAS_PLUGINS: expected plug-ins that import, got '{tmp_path / 'broken.py'} "
        "(RuntimeError: half written)'"]
