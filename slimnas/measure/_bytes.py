"""Serialized size of a model: the bytes of its deployable file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from slimnas.export import export_onnx


def onnx_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of the model's fp32 ONNX file (weights plus the format's fixed overhead)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", input_shape, verify=False)
        return path.stat().st_size


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weight payload alone (dense, at the tensors' own precision)."""
    return int(sum(t.numel() * t.element_size() for t in model.state_dict().values() if t.is_floating_point()))
