"""ONNX export, single file, verified against eager outputs in ONNX Runtime."""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from slimnas.export._session import ort_session

# torch's ONNX exporter warns, on every export, that it skips torchvision's operators when
# torchvision is not installed; slimnas exports no torchvision operator, and the line broke the
# one-line error output of every command that exports (a search's stderr).
logging.getLogger("torch.onnx._internal.exporter._registration").addFilter(
    lambda record: "torchvision is not installed" not in record.getMessage())


class ExportMismatchError(RuntimeError):
    """The exported model's outputs differ from the eager model's."""


@contextlib.contextmanager
def inference_copy(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode on the CPU for the duration, the caller's model as it was after:
    a CPU copy when it lives elsewhere, else the model itself with its training flag restored."""
    param = next(model.parameters(), None)
    if param is not None and param.device.type != "cpu":
        yield copy.deepcopy(model).cpu().eval()
        return
    was_training = model.training
    try:
        yield model.eval()
    finally:
        model.train(was_training)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    *,
    verify: bool = True,
    atol: float = 1e-4,
    opset: int = 17,
) -> Path:
    """Export ``model`` (in eval mode, on CPU) to one ONNX file with a dynamic batch axis; the
    caller's model keeps its device and training mode.

    Uses the TorchScript-based exporter where it works: it writes leaner files than the
    ``torch.export`` path (which matters for models of a few kB) and is faster.

    Args:
        verify: run the file in ONNX Runtime on random inputs and raise
            :class:`ExportMismatchError` if outputs differ by more than ``atol``.

    Example:
        >>> export_onnx(torch.nn.Linear(4, 2), "/tmp/lin.onnx", (4,)).name
        'lin.onnx'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.randn(2, *input_shape)
    with inference_copy(model) as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(work, (x,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=opset)
        except Exception:  # noqa: BLE001 - fall back to the torch.export-based exporter
            batch = torch.export.Dim("batch", min=1)
            torch.onnx.export(work, (x,), str(path), dynamo=True, external_data=False, input_names=["input"],
                              output_names=["logits"], dynamic_shapes=({0: batch},), opset_version=max(opset, 18),
                              verbose=False)
        if verify:
            verify_onnx(work, path, input_shape, atol=atol)
    return path


def export_proto(model: nn.Module, input_shape: tuple[int, ...], *, verify: bool = True) -> onnx.ModelProto:
    """The model as an in-memory ONNX graph (see :func:`export_onnx`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(str(export_onnx(model, Path(tmp) / "model.onnx", input_shape, verify=verify)))


def verify_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...], *, atol: float = 1e-4,
                rtol: float = 1e-4, batch: int = 4) -> float:
    """Max absolute difference between ONNX Runtime and eager outputs; raises where it passes
    ``atol + rtol * |eager|`` (float rounding grows with the outputs) or an output is not finite."""
    x = torch.randn(batch, *input_shape)
    with inference_copy(model) as work, torch.no_grad():
        expected = work(x).numpy()
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    if not (np.isfinite(expected).all() and np.isfinite(got).all()):
        raise ExportMismatchError(f"{path}: the model's outputs are not finite (NaN or infinite)")
    diff = float(np.max(np.abs(got - expected)))
    if not np.all(np.abs(got - expected) <= atol + rtol * np.abs(expected)):
        raise ExportMismatchError(f"{path}: ONNX Runtime output differs from eager by {diff:.3g} "
                                  f"(> {atol} + {rtol} x |output|)")
    return diff
