"""Latency on a real runtime: ONNX Runtime or PyTorch, median of many timed repeats after warm-up."""

from __future__ import annotations

import abc
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.export import export_onnx, ort_session
from slimnas.measure._metric import MS_UNITS, BaseMetric, register_metric
from slimnas.registry import Registry

RUNTIMES: Registry = Registry("measure.runtime")


def _median_ms(fn, *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


class BaseLatency(abc.ABC):
    """Measures a model's latency in milliseconds per batch.

    Call order: ``__init__`` stores the settings; :meth:`measure` times one model or file.
    """

    def __init__(self, *, batch_size: int = 1, warmup: int = 20, repeats: int = 100, threads: int = 1) -> None:
        self.batch_size, self.warmup, self.repeats, self.threads = batch_size, warmup, repeats, threads

    @abc.abstractmethod
    def measure(self, model: nn.Module | str | Path, input_shape: tuple[int, ...]) -> float:
        """Median latency (ms) of one batch of ``batch_size`` samples."""


@RUNTIMES.register("onnxruntime")
class OnnxRuntimeLatency(BaseLatency):
    """Latency of an ONNX file (or a module, exported on the fly) in ONNX Runtime on the CPU."""

    def measure(self, model, input_shape):
        if isinstance(model, nn.Module):
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(model, Path(tmp) / "model.onnx", input_shape, verify=False)
                return self.measure(path, input_shape)
        sess = ort_session(model, threads=self.threads)  # a file or its bytes
        name = sess.get_inputs()[0].name
        x = np.random.default_rng(0).standard_normal((self.batch_size, *input_shape)).astype(np.float32)
        return _median_ms(lambda: sess.run(None, {name: x}), warmup=self.warmup, repeats=self.repeats)


@RUNTIMES.register("torch")
class TorchLatency(BaseLatency):
    """Latency of an eager module in PyTorch (CPU or CUDA, synchronised)."""

    def measure(self, model, input_shape):
        device = next(model.parameters()).device
        x = torch.randn(self.batch_size, *input_shape, device=device)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

        def run():
            with torch.inference_mode():
                model(x)
            sync()

        prev, was_training = torch.get_num_threads(), model.training
        torch.set_num_threads(self.threads)
        model.eval()
        try:
            return _median_ms(run, warmup=self.warmup, repeats=self.repeats)
        finally:
            torch.set_num_threads(prev)
            model.train(was_training)


@register_metric("latency_ms", aliases=("latency",))
class Latency(BaseMetric):
    """Median latency of one batch on the run's runtime (``measure.runtime``: the exported file
    in ONNX Runtime, or the eager model in PyTorch)."""

    unit, units = "ms", MS_UNITS
    description = "median latency of a batch (measure.runtime, measure.latency_batch)"

    def measure(self, ctx):
        s = ctx.settings
        runtime = RUNTIMES.get(s.get("runtime", "onnxruntime"))(
            batch_size=s.get("latency_batch", 1), repeats=s.get("latency_repeats", 50), threads=s.get("threads", 1))
        target = ctx.onnx if s.get("runtime", "onnxruntime") == "onnxruntime" and ctx.onnx is not None else ctx.model
        if target is None:
            raise ConfigError("metric.latency_ms", "a candidate with its model or exported file to time")
        return runtime.measure(target, ctx.input_shape)
