"""Exporting prints nothing of torch's own on stderr: a command's error output stays one line."""

from __future__ import annotations

import subprocess
import sys


def test_onnx_export_prints_no_torchvision_warning(tmp_path):
    """torch's ONNX exporter warned on every dynamo export that torchvision is not installed
    (four lines on stderr), which broke the one-line output of every command that exports."""
    script = ("import torch, slimnas.export\n"
              "m = torch.nn.Sequential(torch.nn.Linear(4, 2))\n"
              f"torch.onnx.export(m, (torch.zeros(1, 4),), {str(tmp_path / 'm.onnx')!r}, dynamo=True, "
              "external_data=False)\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.onnx").is_file()
    assert "torchvision" not in r.stderr, r.stderr
