"""Latency on a real runtime: ONNX Runtime (CPU fp32 and int8, CUDA), PyTorch eager (CPU, CUDA).

Every runtime warms up, times many repeats of one batch of random (never all-zero) inputs with
its thread count fixed, and reports the median with its spread (10th and 90th percentiles), the
runtime, threads, batch, precision and the machine (:class:`LatencyStats`). Runtimes are a
registry (``RUNTIMES``); the ``latency_ms`` metric times candidates with the run's runtime
(``measure.runtime``), or predicts them from a device profile's table when the run targets one.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import statistics
import tempfile
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
from torch import nn

from slimnas.config import DEFAULT_RUNTIME
from slimnas.errors import ConfigError
from slimnas.export import export_onnx
from slimnas.export._int8 import file_precision, quantize_onnx
from slimnas.export._layout import rows_where_possible
from slimnas.export._session import ort_session
from slimnas.measure._machine import machine_info
from slimnas.measure._metric import MS_UNITS, BaseMetric, register_metric
from slimnas.registry import Registry

RUNTIMES: Registry = Registry("measure.runtime")


def register_runtime(name: str):
    """Class decorator: register a :class:`BaseLatency` under ``name`` (``measure.runtime``)."""

    return RUNTIMES.register_class(name)


@dataclass(frozen=True)
class LatencyStats:
    """One latency measurement: the median of ``repeats`` timed batches after ``warmup`` untimed
    ones, its spread, and where and how it was measured."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    warmup: int
    runtime: str
    threads: int
    batch: int
    precision: str
    machine: dict = field(default_factory=dict)

    @property
    def spread(self) -> float:
        """``(p90 - p10) / median``: how noisy the measurement was."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("median_ms", "p10_ms", "p90_ms", "min_ms"):
            out[k] = round(out[k], 6)
        out["spread"] = round(self.spread, 4)
        return out


#: a latency figure is timed over at least this many milliseconds of calls (more repeats for a
#: fast model): 200 calls of a 12 us model last 2.4 ms, and such a median moved by 44% between
#: runs of the same file; over 20 ms it holds within 1%
MIN_TIME_MS = 20.0
#: models timed together take turns in bursts of about this many milliseconds of calls (the
#: first call of a burst untimed): short enough that the models share the machine's drift,
#: long enough that each is timed with warm caches, as a model served back to back is
BURST_MS = 2.0


def time_calls(fn: Callable[[], Any], *, warmup: int, repeats: int, min_ms: float = 0.0) -> list[float]:
    """Milliseconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones; more
    calls where the timed ones last under ``min_ms`` in all (and the warm-up under a quarter of it)."""
    _warm_up(fn, warmup, min_ms / 4)
    times, total = [], 0.0
    while len(times) < repeats or total < min_ms:
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
        total += times[-1]
    return times


def _warm_up(fn: Callable[[], Any], calls: int, min_ms: float) -> float:
    """Call ``fn`` untimed, at least ``calls`` times and for ``min_ms``; the ms a call took."""
    t_start, n = time.perf_counter(), 0
    while n < calls or 1e3 * (time.perf_counter() - t_start) < min_ms:
        fn()
        n += 1
    return 1e3 * (time.perf_counter() - t_start) / max(n, 1)


def _percentile(sorted_times: list[float], q: float) -> float:
    return float(np.percentile(sorted_times, q))


#: what a runtime can time (:attr:`BaseLatency.times`): the deployable file or the eager model
TIMES = ("file", "model")


def random_inputs(batch: int, input_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Standard-normal inputs (never all zeros: some kernels take shortcuts on zeros)."""
    return np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype(np.float32)


class BaseLatency(abc.ABC):  # noqa: B024 - a runtime implements prepare() or, in older plug-ins, measure()
    """Measures a model's latency in milliseconds per batch on one runtime.

    Call order: ``__init__`` stores the settings; :meth:`unavailable` says why this machine
    cannot run it (``None`` when it can); :meth:`measure_stats` (or :meth:`measure`, its median)
    times one model or file: :meth:`prepare` returns the function that runs one batch, which is
    warmed up and timed. A runtime overrides :meth:`prepare` (older plug-ins that override
    :meth:`measure` alone still work: their figure is reported without a spread).

    Args:
        batch_size: samples per timed call.
        warmup, repeats: untimed and timed calls (at least; see ``min_time_ms``).
        min_time_ms: the timed calls last at least this long in all: a fast model is timed
            more than ``repeats`` times (:data:`MIN_TIME_MS`; 0 for exactly ``repeats``).
        threads: intra-op threads, fixed (latency is noisy otherwise).
        precision: what to time, among the runtime's ``precisions`` (its first by default).
    """

    name: ClassVar[str] = ""
    device: ClassVar[str] = "cpu"
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: how a 1-D CNN's batch is laid out for the runtime: ``plain`` or ``rows`` (``onnx-fp32-rows``)
    layout: ClassVar[str] = "plain"
    #: what the runtime times, one of :data:`TIMES`: ``"model"`` (the eager module; a plug-in's
    #: default) or ``"file"`` (the exported ONNX file: where a candidate has one, it is timed, not the model)
    times: ClassVar[str] = "model"

    def __init__(self, *, batch_size: int = 1, warmup: int = 20, repeats: int = 100, threads: int = 1,
                 precision: str | None = None, min_time_ms: float = MIN_TIME_MS) -> None:
        self.batch_size, self.warmup, self.repeats, self.threads = batch_size, warmup, repeats, threads
        self.min_time_ms = min_time_ms
        self.precision = precision or self.precisions[0]

    def unavailable(self) -> str | None:
        """Why this machine cannot run the runtime (no CUDA device, a missing package), or ``None``."""
        return None

    def check(self, field: str = "measure.runtime") -> None:
        """Raise :class:`ConfigError` when the runtime cannot run here or the precision is not one of its own."""
        why = self.unavailable()
        if why is not None:
            raise ConfigError(field, f"a runtime this machine can run ({self.name}: {why})", self.name)
        if self.precision not in self.precisions:
            raise ConfigError(f"{field}.precision", f"one of {list(self.precisions)} for {self.name}", self.precision)

    def prepare(self, model: nn.Module | str | Path | bytes, input_shape: tuple[int, ...]) -> Callable[[], Any]:
        """The function that runs one batch of ``batch_size`` random samples (set up, not timed)."""
        raise NotImplementedError

    def source(self, model: nn.Module | str | Path | bytes, input_shape: tuple[int, ...],
               tmp: str) -> nn.Module | str | Path | bytes:
        """What is timed of ``model``: a ``"file"`` runtime's ONNX file (a module exported into the
        folder ``tmp``; a file as it is), a ``"model"`` runtime's model itself."""
        return _as_file(model, input_shape, tmp) if self.times == "file" else model

    def measured_precision(self, model) -> str:
        """The precision the last :meth:`prepare` ran at (the label of its figures)."""
        return self.precision

    def measure_stats(self, model: nn.Module | str | Path | bytes, input_shape: tuple[int, ...]) -> LatencyStats:
        """Warm up, time ``repeats`` batches, and summarize them with their metadata."""
        self.check()
        meta = dict(runtime=self.name, threads=self.threads, batch=self.batch_size,
                    machine=machine_info(cuda=self.device == "cuda"), warmup=self.warmup)
        if type(self).prepare is BaseLatency.prepare:
            if type(self).measure is BaseLatency.measure:
                raise NotImplementedError(f"runtime {self.name!r} implements neither prepare() nor measure()")
            ms = float(self.measure(model, input_shape))  # a plug-in written before prepare() existed
            return LatencyStats(ms, ms, ms, ms, repeats=1, precision=self.precision, **meta)
        run = self.prepare(model, input_shape)
        try:
            times = sorted(time_calls(run, warmup=self.warmup, repeats=self.repeats, min_ms=self.min_time_ms))
        finally:
            self.release()
        return LatencyStats(statistics.median(times), _percentile(times, 10), _percentile(times, 90), times[0],
                            repeats=len(times), precision=self.measured_precision(model), **meta)

    def release(self) -> None:  # noqa: B027 - an optional hook
        """Hook: free what :meth:`prepare` set up (thread counts, device memory)."""

    def measure(self, model: nn.Module | str | Path | bytes, input_shape: tuple[int, ...]) -> float:
        """Median latency (ms) of one batch of ``batch_size`` samples."""
        return self.measure_stats(model, input_shape).median_ms


def _as_file(model, input_shape, tmp: str) -> Path | bytes | str:
    if isinstance(model, nn.Module):
        return export_onnx(model, Path(tmp) / "model.onnx", input_shape, verify=False)
    return model


@register_runtime(DEFAULT_RUNTIME)
class OnnxRuntimeLatency(BaseLatency):
    """Latency of an ONNX file (or a module, exported on the fly) in ONNX Runtime on the CPU. A
    file is timed as it is (an int8 file as int8); with ``precision="int8"`` an fp32 model is
    first converted to int8 in ``int8_format`` (``qdq``, ``qoperator`` or ``dynamic``)."""

    precisions = ("fp32", "int8")
    times = "file"

    def __init__(self, *, int8_format: str = "qdq", **kwargs) -> None:
        super().__init__(**kwargs)
        self.int8_format = int8_format

    def source(self, model, input_shape, tmp: str) -> Path | bytes | str:
        """The file to time: ``model`` exported (modules), converted to int8 where asked."""
        src = super().source(model, input_shape, tmp)
        if self.precision == "int8" and file_precision(src) == "fp32":
            src = quantize_onnx(src, fmt=self.int8_format)
        return src

    def session(self, src):
        return ort_session(src, threads=self.threads)

    def measure_stats(self, model, input_shape):
        with tempfile.TemporaryDirectory() as tmp:
            self._src = self.source(model, input_shape, tmp)
            return super().measure_stats(self._src, input_shape)

    def prepare(self, model, input_shape):
        sess = self.session(model)
        name = sess.get_inputs()[0].name
        x = random_inputs(self.batch_size, input_shape)
        return lambda: sess.run(None, {name: x})

    def measured_precision(self, model) -> str:
        return file_precision(model)


@register_runtime("onnxruntime-int8")
class OnnxRuntimeInt8Latency(OnnxRuntimeLatency):
    """ONNX Runtime on the CPU at int8: fp32 models are converted (static, QDQ by default) first."""

    precisions = ("int8",)


@register_runtime("onnxruntime-rows")
class OnnxRuntimeRowsLatency(OnnxRuntimeLatency):
    """ONNX Runtime on the CPU, a 1-D CNN timed as the ``onnx-fp32-rows`` export writes it (the
    batch as the rows of one image: one GEMM per convolution for the whole batch); a model
    without 1-D convolutions is timed as ``onnxruntime`` times it."""

    precisions = ("fp32",)
    layout = "rows"

    def source(self, model, input_shape, tmp: str) -> Path | bytes | str:
        src = super().source(model, input_shape, tmp)
        proto = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(str(src))
        return rows_where_possible(proto).SerializeToString()


@register_runtime("onnxruntime-cuda")
class OnnxRuntimeCudaLatency(OnnxRuntimeLatency):
    """ONNX Runtime's CUDA provider (needs ``onnxruntime-gpu`` and a CUDA device); inputs are
    copied to the device and outputs back in every timed call, as an application's would be."""

    device = "cuda"
    precisions = ("fp32",)

    def unavailable(self) -> str | None:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return "ONNX Runtime has no CUDA provider here (install onnxruntime-gpu on a CUDA machine)"
        if not torch.cuda.is_available():
            return "no CUDA device is visible"
        return None

    def session(self, src):
        return ort_session(src, threads=self.threads, provider="cuda")


TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@register_runtime("torch")
class TorchLatency(BaseLatency):
    """Latency of an eager module in PyTorch on the CPU (a copy is moved there if it lives
    elsewhere), under ``torch.inference_mode`` with the thread count fixed."""

    precisions = ("fp32",)

    def _module(self, model) -> nn.Module:
        if not isinstance(model, nn.Module):
            raise ConfigError("measure.runtime", f"a model (not a file) for the eager runtime {self.name!r}",
                              type(model).__name__)
        target = torch.device(self.device if self.device != "cuda" else "cuda")
        param = next(model.parameters(), None)
        dtype = TORCH_DTYPES[self.precision]
        if param is None or param.device.type != target.type or param.dtype != dtype:
            model = copy.deepcopy(model).to(target, dtype)
        return model

    def prepare(self, model, input_shape):
        module = self._module(model)
        param = next(module.parameters(), None)  # none in a parameter-free module (an activation)
        device = param.device if param is not None else torch.device(self.device)
        dtype = TORCH_DTYPES[self.precision]
        x = torch.from_numpy(random_inputs(self.batch_size, input_shape)).to(device, dtype)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._restore = (torch.get_num_threads(), module, module.training)
        torch.set_num_threads(self.threads)
        module.eval()

        def run():
            with torch.inference_mode():
                module(x)
            sync()

        return run

    def release(self) -> None:
        threads, module, was_training = self._restore
        torch.set_num_threads(threads)
        module.train(was_training)


@register_runtime("torch-cuda")
class TorchCudaLatency(TorchLatency):
    """Latency of an eager module in PyTorch on a CUDA device (synchronised after every batch),
    at ``fp32``, ``fp16`` or ``bf16``; inputs are created on the device."""

    device = "cuda"
    precisions = ("fp32", "fp16", "bf16")

    def unavailable(self) -> str | None:
        return None if torch.cuda.is_available() else "no CUDA device is visible"


class InterleavedTimer:
    """Times several models together, one :meth:`round` at a time (at each batch size, the
    models take turns in short bursts of calls, at least ``repeats`` of each; each model's
    median), and keeps each
    model's fastest round (:meth:`result`). A shared machine's speed drifts by a quarter within
    a second (the same ONNX Runtime session of the paper CNN read 0.23 to 0.38 ms a batch of 64,
    in consecutive blocks of 200 calls): models timed one block after another compare across
    that drift, models taking turns every few milliseconds share it. A slow spell lasting most rounds is left
    out by keeping the fastest. Rounds can be spread over a longer job (a profile's operator
    rounds) to outlast the spells. ONNX runtimes export (and convert to ``precision``) each
    module once, on entry.

    Example:
        >>> from torch import nn
        >>> with InterleavedTimer({"a": nn.Linear(8, 4)}, (8,), batches=(1, 4), repeats=5) as timer:
        ...     timer.round(); timer.round()
        ...     sorted(timer.result()["a"])
        [1, 4]
    """

    def __init__(self, models: Mapping[Hashable, nn.Module | str | Path | bytes], input_shape: tuple[int, ...], *,
                 batches: Sequence[int] = (1,), repeats: int = 100, warmup: int = 10,
                 runtime: str = DEFAULT_RUNTIME, threads: int = 1, precision: str | None = None,
                 min_time_ms: float = MIN_TIME_MS) -> None:
        self.cls = RUNTIMES.get(runtime)
        self.min_time_ms = min_time_ms
        self.precision = precision if precision is None or precision in self.cls.precisions else None
        self.models, self.input_shape, self.batches = models, input_shape, tuple(batches)
        self.repeats, self.warmup, self.threads = repeats, warmup, threads
        self.samples: dict[Hashable, dict[int, list[float]]] = {k: {b: [] for b in batches} for k in models}
        self._stack = contextlib.ExitStack()
        self.sources: dict = {}

    def __enter__(self) -> InterleavedTimer:
        tmp = self._stack.enter_context(tempfile.TemporaryDirectory())
        for i, (key, model) in enumerate(self.models.items()):
            rt = self.cls(threads=self.threads, precision=self.precision)
            if rt.times == "file":
                folder = Path(tmp) / str(i)
                folder.mkdir()
                model = rt.source(model, self.input_shape, str(folder))
            self.sources[key] = model
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def round(self) -> None:
        """Time every model once at every batch size: the models take turns in short bursts
        of calls (:data:`BURST_MS`; a, b, c, a, b, c, ...), so each median covers the same
        stretch of the machine's time as the others'; each model is timed at least ``repeats``
        times and for ``min_time_ms``."""
        for b in self.batches:
            rts = {k: self.cls(batch_size=b, warmup=self.warmup, repeats=self.repeats, threads=self.threads,
                               precision=self.precision, min_time_ms=self.min_time_ms) for k in self.sources}
            if type(next(iter(rts.values()))).prepare is BaseLatency.prepare:  # a plug-in with measure() alone
                for key, src in self.sources.items():
                    self.samples[key][b].append(rts[key].measure_stats(src, self.input_shape).median_ms)
                continue
            prepared = []
            try:
                runs = {}
                for key, src in self.sources.items():
                    rts[key].check()
                    runs[key] = rts[key].prepare(src, self.input_shape)
                    prepared.append(rts[key])
                burst = {}
                for key, run in runs.items():
                    per_call = _warm_up(run, self.warmup, self.min_time_ms / 4)
                    burst[key] = max(2, int(BURST_MS / max(per_call, 1e-6)))
                times = {k: [] for k in runs}
                total = dict.fromkeys(runs, 0.0)
                pending = list(runs)
                while pending:
                    for key in pending:
                        # the burst's first call untimed: the others' calls left the caches cold
                        got = time_calls(runs[key], warmup=1, repeats=burst[key])
                        times[key] += got
                        total[key] += sum(got)
                    pending = [k for k in pending if len(times[k]) < self.repeats or total[k] < self.min_time_ms]
            finally:
                for rt in reversed(prepared):
                    rt.release()
            for key, t in times.items():
                self.samples[key][b].append(statistics.median(t))

    def result(self) -> dict[Hashable, dict[int, float]]:
        """Each model's fastest round, ms per batch."""
        return {k: {b: min(v) for b, v in per.items()} for k, per in self.samples.items()}


def interleaved_latency(models: Mapping[Hashable, nn.Module | str | Path | bytes], input_shape: tuple[int, ...], *,
                        batches: Sequence[int] = (1,), rounds: int = 5, repeats: int = 100, warmup: int = 10,
                        runtime: str = DEFAULT_RUNTIME, threads: int = 1, precision: str | None = None,
                        min_time_ms: float = MIN_TIME_MS) -> dict[Hashable, dict[int, float]]:
    """Ms per batch of each model, its fastest of ``rounds`` rounds in which every model is
    timed in turn (:class:`InterleavedTimer`).

    Example:
        >>> from torch import nn
        >>> lat = interleaved_latency({"a": nn.Linear(8, 4), "b": nn.Linear(8, 64)}, (8,), batches=(1, 4),
        ...                           rounds=2, repeats=5)
        >>> sorted(lat), sorted(lat["a"])
        (['a', 'b'], [1, 4])
    """
    with InterleavedTimer(models, input_shape, batches=batches, repeats=repeats, warmup=warmup, runtime=runtime,
                          threads=threads, precision=precision, min_time_ms=min_time_ms) as timer:
        for _ in range(rounds):
            timer.round()
        return timer.result()


def runtime_for(settings: dict, *, batch: int | None = None, field: str = "measure.runtime") -> BaseLatency:
    """The runtime a run's measurement settings name, built with its batch, repeats, threads
    and precision (checked: it runs on this machine)."""
    runtime = RUNTIMES.get(settings.get("runtime", DEFAULT_RUNTIME))(
        batch_size=batch or settings.get("latency_batch", 1), repeats=settings.get("latency_repeats", 50),
        threads=settings.get("threads", 1), precision=settings.get("precision"))
    runtime.check(field)
    return runtime


@register_metric("latency_ms", aliases=("latency",))
class Latency(BaseMetric):
    """Median latency of one batch on the run's runtime (``measure.runtime``: the exported file
    in ONNX Runtime, or the eager model in PyTorch). When the run targets a device profile with a
    latency table, the profile's predictor gives the figure instead (the front is re-measured).
    How it was obtained is kept beside it, as ``latency_ms_info``."""

    unit, units = "ms", MS_UNITS
    label = "latency ms"
    description = "median latency of a batch (measure.runtime, measure.latency_batch)"

    def known_before_training(self, settings: dict) -> bool:
        return settings.get("latency_predictor") is not None  # predicted from the model's structure

    def measure(self, ctx):
        s = ctx.settings
        predictor = s.get("latency_predictor")
        if predictor is not None and ctx.model is not None:
            pred = predictor.predict(ctx.model, ctx.input_shape, batch=s.get("latency_batch", 1),
                                     precision=s.get("precision") or "fp32")
            ctx.metrics["latency_ms_info"] = {"source": "predicted", **predictor.describe(), "batch": pred.batch,
                                              "precision": pred.precision}
            return pred.ms
        runtime = runtime_for(s)
        on_file = runtime.times == "file" and ctx.onnx is not None
        target = ctx.onnx if on_file else ctx.model
        if target is None:
            raise ConfigError("metric.latency_ms", "a candidate with its model or exported file to time")
        stats = runtime.measure_stats(target, ctx.input_shape)
        ctx.metrics["latency_ms_info"] = {"source": "measured", **stats.to_dict()}
        return stats.median_ms
