"""ONNX Runtime sessions (set up in one place) and inference on an ONNX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


def ort_session(model: str | Path | bytes, *, threads: int = 1, provider: str = "cpu"):
    """An ONNX Runtime session on a file or serialized model, with a fixed thread count
    (latency is noisy otherwise) and warnings off; on the CPU, or with ``provider="cuda"`` on
    ONNX Runtime's CUDA provider (``onnxruntime-gpu``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(source, opts, providers=providers)


def predict(model: str | Path | bytes, x: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """Logits of the ONNX model on ``x`` (a tensor, or samples read from disk per batch), run in
    ONNX Runtime; inputs go in as the model's input type (float32, or int64 token ids)."""
    sess = ort_session(model)
    first = sess.get_inputs()[0]
    dtype = np.int64 if first.type == "tensor(int64)" else np.float32
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy().astype(dtype)
        return np.concatenate([sess.run(None, {first.name: arr[i : i + batch_size]})[0]
                               for i in range(0, len(arr), batch_size)])
    if hasattr(x, "rows_per"):  # read from disk: batches bounded in bytes
        batch_size = min(batch_size, x.rows_per())
    return np.concatenate([sess.run(None, {first.name: np.asarray(x[i : i + batch_size], dtype=dtype)})[0]
                           for i in range(0, len(x), batch_size)])


def onnx_accuracy(model: str | Path | bytes, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of the ONNX model, run in ONNX Runtime; with a user score function in
    use (:mod:`slimnas.training._user`), its primary score of the file instead."""
    from slimnas.export._user_score import onnx_score

    user = onnx_score(model, x, y)
    if user is not None:
        return user
    return float((predict(model, x).argmax(1) == y.cpu().numpy()).mean())


def max_abs_diff(model: str | Path | bytes, eager: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between ONNX Runtime's and eager outputs on ``x``."""
    with torch.no_grad():
        expected = eager.cpu().eval()(x).numpy()
    got = predict(model, x)
    from slimnas.models._detector import aligned_detections, holds_detector

    if holds_detector(eager):  # a detector's top-K: rows of equal score in either runtime's order
        expected, got = aligned_detections(expected, got)
    return float(np.max(np.abs(got - expected)))
