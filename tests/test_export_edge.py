"""Export formats for edge runtimes: ExecuTorch ``.pte`` files run back in ExecuTorch's own runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from slimnas.export import export_model
from slimnas.testing import SHAPE, TINY_MODELS, tiny_data

pytest.importorskip("executorch", reason="executorch not installed (pip install 'slimnas[edge]')")


def test_pte_files_run_in_executorch_delegated_to_xnnpack(tmp_path):
    from slimnas.export._executorch import pte_delegates, run_pte

    model, data = TINY_MODELS["paper_cnn"](), tiny_data()
    fp32 = export_model(model, tmp_path / "m.pte", SHAPE, format="executorch", inputs=data.x_val)
    int8 = export_model(model, tmp_path / "q.pte", SHAPE, format="executorch-int8", calibration=data.x_train,
                        inputs=data.x_val)
    for result in (fp32, int8):
        assert result.path.read_bytes()[4:8] == b"ET12"  # ExecuTorch's FlatBuffer identifier
        assert pte_delegates(result.path) == ["XnnpackBackend"]
    with torch.no_grad():
        eager = model.eval()(data.x_val).numpy()
    got = run_pte(fp32.path, data.x_val)
    np.testing.assert_allclose(got, eager, atol=1e-5)
    assert fp32.max_abs_diff < 1e-5
    # int8 weights (a quarter of fp32's bytes; the tiny model's graph and scales are the rest of
    # the file), outputs close but not equal
    assert int8.path.stat().st_size < 0.7 * fp32.path.stat().st_size
    q = run_pte(int8.path, data.x_val)
    assert 0 < np.abs(q - eager).max() < 0.1 * np.abs(eager).max()
    assert (q.argmax(1) == eager.argmax(1)).mean() >= 0.9


def test_a_missing_executorch_is_one_line_and_exit_2(tmp_path):
    script = ("import sys; sys.modules['executorch'] = None\n"
              "from slimnas.cli import main\n"
              f"sys.argv = ['slimnas', 'export', {str(tmp_path)!r}, '--out', {str(tmp_path / 'm.pte')!r}, "
              "'--format', 'executorch']\n"
              "main()\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "executorch package" in lines[0] and "slimnas[edge]" in lines[0], lines
    assert not (tmp_path / "m.pte").exists()
