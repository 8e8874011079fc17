"""The ``ort`` export format: ONNX Runtime Mobile's file, from ONNX Runtime's converter."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch

from slimnas.export import export_model
from slimnas.testing import SHAPE, TINY_MODELS


def test_ort_file_loads_in_onnx_runtime_and_computes_what_the_onnx_file_does(tmp_path):
    model = TINY_MODELS["residual_cnn"]()
    ort_path = export_model(model, tmp_path / "m.ort", SHAPE, format="ort").path
    onnx_path = export_model(model, tmp_path / "m.onnx", SHAPE, format="onnx-fp32").path
    data = ort_path.read_bytes()
    assert data[4:8] == b"ORTM"  # the ORT format's FlatBuffer identifier, not an ONNX protobuf
    x = torch.randn(16, *SHAPE).numpy()
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for p in (ort_path, onnx_path)]
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(outs[0], model(torch.from_numpy(x)).numpy(), atol=1e-4)
