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
from slimnas.models._io import ExampleInputs, FlatModel, flatten_outputs

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
    input_shape: tuple[int, ...] | ExampleInputs,
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
        input_shape: the shape of one sample of the model's one float input (``input``, one
            output ``logits``), or :class:`~slimnas.models._io.ExampleInputs` for a model with
            several inputs, keyword inputs (integer ids too) or several outputs: the file's
            inputs are named as the model's ``forward`` names them (``input_ids``,
            ``attention_mask``), its outputs as :func:`~slimnas.models._io.flatten_outputs`
            names them (a ``ModelOutput``'s ``logits``), every one with a dynamic batch axis.
        verify: run the file in ONNX Runtime on random inputs (on the example inputs) and raise
            :class:`ExportMismatchError` if outputs differ by more than ``atol``.

    Example:
        >>> export_onnx(torch.nn.Linear(4, 2), "/tmp/lin.onnx", (4,)).name
        'lin.onnx'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(input_shape, ExampleInputs):
        return _export_several(model, path, input_shape, verify=verify, atol=atol, opset=opset)
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


def _export_several(model: nn.Module, path: Path, example: ExampleInputs, *, verify: bool, atol: float,
                    opset: int) -> Path:
    """:func:`export_onnx` for a model taking :class:`ExampleInputs`: traced through
    :class:`FlatModel` (the inputs as positional tensors in, the outputs flattened out)."""
    with inference_copy(model) as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example.probe(work)  # a model that does not take them: one line, before the exporter's traceback
        flat = FlatModel(work, example)
        inputs, outputs = example.names(work), flat.output_names()
        batch = {name: {0: "batch"} for name in (*inputs, *outputs)}
        args = example.flat()
        try:
            torch.onnx.export(flat, args, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes=batch, opset_version=opset)
        except Exception:  # noqa: BLE001 - fall back to the torch.export-based exporter
            dim = torch.export.Dim("batch", min=1)
            torch.onnx.export(flat, args, str(path), dynamo=True, external_data=False, input_names=inputs,
                              output_names=outputs, dynamic_shapes=tuple({0: dim} for _ in args),
                              opset_version=max(opset, 18), verbose=False)
        _unwrap_scopes(path)
        if verify:
            verify_onnx(work, path, example, atol=atol)
    return path


def _unwrap_scopes(path: Path) -> None:
    """Node names as exporting the model itself gives them (``/fc/Gemm``, not ``/model/fc/Gemm``
    through :class:`FlatModel`'s ``model``), so layer names read from the file are the model's."""
    proto = onnx.load(str(path))
    renamed = False
    for node in proto.graph.node:
        if node.name.startswith("/model/"):
            node.name, renamed = node.name[len("/model"):], True
    if renamed:
        onnx.save(proto, str(path))


def onnx_feed(path: str | Path | bytes, example: ExampleInputs, model: nn.Module | None = None) -> dict:
    """The example inputs as ONNX Runtime's feed for the file: by the names
    :func:`export_onnx` gave them (positional inputs are named by ``model.forward``; without
    the model, in the file's order), each in the file's input type."""
    names = example.names(model)
    given = dict(zip(names, example.flat(), strict=True))
    specs = ort_session(path).get_inputs()
    if model is None and len(specs) == len(given) and not all(s.name in given for s in specs):
        given = dict(zip([s.name for s in specs], example.flat(), strict=True))
    feed = {}
    for spec in specs:
        if spec.name not in given:
            raise ExportMismatchError(f"the ONNX file takes an input {spec.name!r} the example inputs do not "
                                      f"have ({', '.join(names)})")
        dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}.get(spec.type,
                                                                                                    np.float32)
        feed[spec.name] = given[spec.name].detach().cpu().numpy().astype(dtype)
    return feed


def export_proto(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs, *,
                 verify: bool = True) -> onnx.ModelProto:
    """The model as an in-memory ONNX graph (see :func:`export_onnx`)."""
    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(str(export_onnx(model, Path(tmp) / "model.onnx", input_shape, verify=verify)))


def verify_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...] | ExampleInputs, *,
                atol: float = 1e-4, rtol: float = 1e-4, batch: int = 4) -> float:
    """Max absolute difference between ONNX Runtime and eager outputs (every output of a model
    given :class:`ExampleInputs`, on ``batch`` samples of them); raises where it passes
    ``atol + rtol * |eager|`` (float rounding grows with the outputs) or an output is not finite."""
    if isinstance(input_shape, ExampleInputs):
        example = input_shape.take(batch)
        with inference_copy(model) as work, torch.no_grad():
            expected = flatten_outputs(example(work))
            feed = onnx_feed(path, example, work)
        sess = ort_session(path)
        names = [o.name for o in sess.get_outputs()]
        if names != list(expected):
            raise ExportMismatchError(f"{path}: the file's outputs {names} are not the model's {list(expected)}")
        got = sess.run(None, feed)
        return max((_compare(path, e.numpy(), g, atol, rtol, name) for (name, e), g in zip(expected.items(), got,
                                                                                             strict=True)), default=0.0)
    x = torch.randn(batch, *input_shape)
    with inference_copy(model) as work, torch.no_grad():
        expected = work(x).numpy()
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    from slimnas.models._detector import aligned_detections, holds_detector

    if holds_detector(model):  # a detector's top-K: rows of equal score in either runtime's order
        expected, got = aligned_detections(expected, got)
    return _compare(path, expected, got, atol, rtol)


def _compare(path, expected: np.ndarray, got: np.ndarray, atol: float, rtol: float, name: str | None = None) -> float:
    which = f" ({name})" if name else ""
    if expected.shape != got.shape:
        raise ExportMismatchError(f"{path}: ONNX Runtime output{which} is shaped {got.shape}, eager {expected.shape}")
    if not np.issubdtype(expected.dtype, np.floating):
        if not np.array_equal(expected, got):
            raise ExportMismatchError(f"{path}: ONNX Runtime output{which} differs from eager")
        return 0.0
    if not (np.isfinite(expected).all() and np.isfinite(got).all()):
        raise ExportMismatchError(f"{path}: the model's outputs{which} are not finite (NaN or infinite)")
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if not np.all(np.abs(got - expected) <= atol + rtol * np.abs(expected)):
        raise ExportMismatchError(f"{path}: ONNX Runtime output{which} differs from eager by {diff:.3g} "
                                  f"(> {atol} + {rtol} x |output|)")
    return diff
