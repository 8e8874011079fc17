"""Quantization through ONNX Runtime: static int8 (QDQ, per-channel), dynamic int8, fp16.

Static int8 calibrates activation ranges on training samples (min-max) and stores weights as
int8 with per-output-channel scales, in the QDQ format ONNX Runtime fuses into integer kernels
(``QLinearConv``, ``QGemm``). Dynamic int8 quantizes weights ahead of time and activations per
batch at run time: the choice for Linear- and recurrent-heavy models. The accuracy of every
quantized file is measured by running it in ONNX Runtime, never estimated from the float model.

When static int8 loses more than ``max_drop`` validation accuracy and ``qat`` is given, the float
model is fine-tuned with its weights fake-quantized to the same per-channel int8 grid (a
straight-through estimator, Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference") and quantized again.

``int8-auto`` writes both int8 files and keeps the one that helps: of those within ``max_drop``
of the best validation accuracy (measured in ONNX Runtime), the faster at batch 1 (also in
ONNX Runtime). Dynamic int8 usually wins on Linear-heavy models (MLPs, Transformers, whose
MatMuls become ``MatMulInteger``), static QDQ on convolutional ones where the runtime fuses it.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn.utils import parametrize

from slimnas.compress._base import (
    BaseCompressor,
    Gene,
    _require_data,
    precision_steps,
    register_compressor,
)
from slimnas.compress._distill import Retrain
from slimnas.compress._lowbit import encode_lowbit, rewrite_lowbit
from slimnas.compress._quality import Quality, file_quality, model_quality
from slimnas.config import precision_names
from slimnas.config._names import DEFAULT_PRECISIONS, precision_text
from slimnas.errors import ConfigError
from slimnas.export._int8 import _quiet, int8_saturates, int8_weight_max
from slimnas.export._onnx import export_proto
from slimnas.export._proto import fp16_weights, gemm_to_matmul, layer_nodes, lean, size_report
from slimnas.export._session import ort_session
from slimnas.measure._latency import OnnxRuntimeLatency
from slimnas.models._io import ExampleInputs
from slimnas.models._layers import LowRank
from slimnas.spaces import Key
from slimnas.training import evaluate

MODES = ("int8", "int8-dynamic", "int8-auto", "fp16", "fp32")
#: per-layer precisions ONNX Runtime's quantizer writes; the layer precisions below 8 bits are
#: encoded by their compressors and written into the same file (:func:`encode_lowbit`)
RUNTIME_PRECISIONS = ("fp32", "fp16", "int8")
STATIC_FORMATS = ("qdq", "qoperator")  # how static int8 is written (int8-dynamic is the third format)
FP32_TOLERANCE = 1e-3  # largest output difference an fp32 file may show against the eager model
FP16_TOLERANCE = 5e-2
N_CALIBRATION = 512
AUTO_REPEATS = 50  # ONNX Runtime runs whose median times each int8 file for int8-auto


class _Calibration:
    """ONNX Runtime calibration reader over a tensor of samples (the file's one ``input``), or
    over :class:`ExampleInputs` (every input of the file, by name, in its type)."""

    def __init__(self, x: torch.Tensor | ExampleInputs, batch_size: int = 64, proto=None, model=None) -> None:
        if isinstance(x, ExampleInputs):
            types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
                     for i in proto.graph.input} if proto is not None else {}
            names = x.names(model)  # as export_onnx named the file's inputs
            self.x = {n: t.detach().cpu().numpy().astype(types.get(n, np.float32))
                      for n, t in zip(names, x.flat(), strict=True) if n in types}
        else:
            self.x = {"input": x.detach().cpu().numpy().astype(np.float32)}
        self.n = len(next(iter(self.x.values())))
        self.batch_size, self.i = batch_size, 0

    def get_next(self):
        if self.i >= self.n:
            return None
        batch = {name: v[self.i : self.i + self.batch_size] for name, v in self.x.items()}
        self.i += self.batch_size
        return batch

    def rewind(self) -> None:
        self.i = 0


def quantize_model(
    model: nn.Module,
    input_shape: tuple[int, ...] | ExampleInputs,
    *,
    mode: str = "int8",
    calibration: torch.Tensor | None = None,
    layer_precision: Mapping[str, str] | None = None,
    per_channel: bool = True,
    int8_format: str = "qdq",
    reduce_range: bool | None = None,
    lowbit: Mapping | None = None,
    held: dict[str, str] | None = None,
) -> bytes:
    """The model as a lean ONNX file at the given precision (bytes, verified loadable).

    Args:
        input_shape: one sample's shape, or :class:`~slimnas.models._io.ExampleInputs` for a
            model with several (keyword, integer) inputs or outputs (see
            :func:`~slimnas.export.export_onnx`).
        mode: default precision, one of ``int8``, ``int8-dynamic``, ``fp16``, ``fp32``.
        calibration: samples for static int8 activation ranges: a tensor of samples of the one
            input, or :class:`ExampleInputs` feeding every input (by default, a model given
            example inputs calibrates on them).
        layer_precision: per-module precision (``fp32``, ``fp16``, ``int8``) overriding ``mode``.
        int8_format: how static int8 is written: ``qdq`` (quantize/dequantize pairs the runtime
            fuses) or ``qoperator`` (integer operators such as ``QLinearConv``).
        reduce_range: int8 weights on a 7-bit grid; ``None`` (default) does so
            where this machine's integer kernels saturate (:func:`int8_saturates`).
        lowbit: layer -> :class:`~slimnas.compress._lowbit.LowBitWeight` (the model's weight
            already set to its values: :func:`~slimnas.compress._lowbit.encode_lowbit`): those
            layers are held at their bits in the same file (their ``layer_precision`` is fp32);
            ``held`` (a dict) is filled with how each is held.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    _check_mode(mode, "quantize.mode")
    if int8_format not in STATIC_FORMATS:
        raise ConfigError("quantize.int8_format", f"one of {list(STATIC_FORMATS)}", int8_format)
    layer_precision = dict(layer_precision or {})
    encoded = precision_steps()  # written from their encoding (lowbit=), not by ONNX Runtime's quantizer
    for name, p in layer_precision.items():
        if p not in precision_names("layer") or p in encoded:
            raise ConfigError(f"quantize.layer_precision.{name}", precision_text("layer") + (
                f" ({p} encoded first and given as lowbit=)" if p in encoded else ""), p)
    proto = export_proto(model, input_shape)
    nodes = layer_nodes(proto)
    unknown = set(layer_precision) - set(nodes)
    if unknown:
        raise ConfigError("quantize.layer_precision", f"names of Linear/conv layers ({sorted(nodes)})", sorted(unknown)[0])

    def precision(module: str) -> str:
        return layer_precision.get(module, "int8" if mode == "int8-dynamic" else mode)

    int8_nodes = [n for m, n in nodes.items() if precision(m) == "int8"]
    if reduce_range is None:
        reduce_range = int8_saturates()
    with tempfile.TemporaryDirectory() as tmp, _quiet():  # no quantizer advice on the root logger
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "q.onnx"
        if mode == "int8-dynamic":
            proto = gemm_to_matmul(proto)
        onnx.save(proto, str(src))
        if mode == "int8-dynamic":
            quantize_dynamic(str(src), str(dst), per_channel=per_channel, weight_type=QuantType.QInt8,
                             reduce_range=reduce_range,
                             nodes_to_quantize=int8_nodes if layer_precision else None,
                             op_types_to_quantize=["MatMul", "LSTM"])
            proto = onnx.load(str(dst))
        elif int8_nodes:
            if calibration is None and isinstance(input_shape, ExampleInputs):
                calibration = input_shape
            if calibration is None:
                raise ConfigError("quantize.calibration", "training samples for static int8 calibration")
            reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration, proto=proto, model=model)
            fmt = QuantFormat.QDQ if int8_format == "qdq" else QuantFormat.QOperator
            quantize_static(str(src), str(dst), reader, quant_format=fmt, per_channel=per_channel,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=reduce_range, nodes_to_quantize=int8_nodes, extra_options={"WeightSymmetric": True})
            proto = _drop_zero_points(onnx.load(str(dst)))
    fp16_nodes = {n for m, n in nodes.items() if precision(m) == "fp16"}
    if mode == "fp16" and all(p == "fp16" for p in layer_precision.values()):
        proto = fp16_weights(proto)  # every float tensor: BatchNorm, recurrent weights too
    elif fp16_nodes:
        inits = {i.name for i in proto.graph.initializer}
        names = {i for node in proto.graph.node if node.name in fp16_nodes for i in node.input if i in inits}
        proto = fp16_weights(proto, names)
    if lowbit:
        how = rewrite_lowbit(proto, dict(lowbit))
        if held is not None:
            held.update(how)
    data = lean(proto).SerializeToString()
    ort_session(data)  # raises if ONNX Runtime cannot load the result
    return data


ZERO_POINT_TYPES = (onnx.TensorProto.INT8, onnx.TensorProto.INT32)


def _drop_zero_points(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Remove the all-zero zero points of int8 weights and int32 biases: optional in
    ``DequantizeLinear`` (zero is the default), they cost 1 or 4 bytes per channel."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    dropped = set()
    for node in proto.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[0] not in inits:
            continue
        zp = inits.get(node.input[2])
        if zp is not None and zp.data_type in ZERO_POINT_TYPES and not numpy_helper.to_array(zp).any():
            dropped.add(node.input[2])
            del node.input[2]
    still_used = {i for node in proto.graph.node for i in node.input}
    keep = [i for i in proto.graph.initializer if i.name not in dropped or i.name in still_used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    return proto


def _check_mode(mode: str, field: str) -> None:
    if mode not in MODES:
        raise ConfigError(field, f"one of {list(MODES)}", mode)


class _FakeQuant(nn.Module):
    """Per-output-channel symmetric int8 fake quantization (the grid quantize_model writes) with a
    straight-through gradient."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        flat = w.reshape(w.shape[0], -1)
        top = int8_weight_max()
        scale = (flat.abs().amax(1).clamp_min(1e-12) / top).reshape(-1, *([1] * (w.dim() - 1)))
        q = torch.clamp(torch.round(w / scale), -top, top) * scale
        return w + (q - w).detach()


def fake_quantize_weights(model: nn.Module) -> list[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    for m in layers:
        parametrize.register_parametrization(m, "weight", _FakeQuant())
    return layers


def expand_precision(model: nn.Module, precision: Mapping[str, str]) -> dict[str, str]:
    """Precision of a factorised layer applies to each of its factors."""
    modules = dict(model.named_modules())
    out = {}
    for name, p in precision.items():
        if isinstance(modules.get(name), LowRank):
            out.update({f"{name}.{i}": p for i in range(len(modules[name]))})
        else:
            out[name] = p
    return out


@register_compressor("quantize")
class OnnxQuantizer(BaseCompressor):
    """Quantize the model into an ONNX file and measure it in ONNX Runtime.

    Args:
        mode: ``int8`` (static, QDQ), ``int8-dynamic``, ``fp16`` or ``fp32``.
        layer_precision: per-module precision (``fp32``/``fp16``/``int8``) overriding ``mode``.
        per_channel: per-output-channel weight scales.
        n_calibration: training samples used to calibrate static int8.
        max_drop: validation accuracy static int8 may lose before ``qat`` fine-tuning runs.
        qat: quantization-aware fine-tuning (``None`` to never run it).
        int8_format: static int8 as ``qdq`` (default) or ``qoperator`` integer operators
            (:func:`slimnas.compress.compare_int8_formats` measures which runs faster).

    In a policy step, ``qat: true`` fine-tunes with the policy's retraining recipe. A layer
    replaced by low-rank factors takes its precision to every factor.

    Learned state: ``model_`` (the float model, fine-tuned if QAT ran), ``onnx_`` (file bytes),
    ``precision_``, ``val_accuracy_`` (ONNX Runtime), ``float_val_accuracy_``, ``qat_ran_`` (the
    fine-tuned file was kept), ``qat_val_accuracy_`` (its accuracy; ``None`` when QAT did not run).

    Example:
        >>> q = OnnxQuantizer(mode="fp16").fit(torch.nn.Linear(8, 4), input_shape=(8,))
        >>> len(q.onnx_) > 0
        True
    """

    def __init__(
        self,
        mode: str = "int8",
        *,
        layer_precision: Mapping[str, str] | None = None,
        per_channel: bool = True,
        n_calibration: int = N_CALIBRATION,
        max_drop: float = 0.01,
        qat: Retrain | None = None,
        int8_format: str = "qdq",
    ) -> None:
        self._store(locals())

    order = 90
    retrains = False  # quantization-aware fine-tuning, when asked, runs inside the step
    writes_file = True
    layer_column = "precision"
    layer_off = "fp32"
    genes = {
        "precision": Gene(Key(str, precision_text("layer"), list(DEFAULT_PRECISIONS),
                              lambda v: v in precision_names("layer")),
                          layers="weighted", tied_by="mixed_precision"),
        "mixed_precision": Gene(Key(bool, "true/false", True), fixed=True),
    }

    @classmethod
    def from_options(cls, options, *, retrain=None, field=None):
        options = dict(options)
        qat = options.pop("qat", None)
        if qat not in (None, True, False):
            raise ConfigError(f"{field or 'compression.quantize'}.qat", "true/false", qat)
        step = super().from_options(options, field=field)
        step.qat = retrain if qat else None
        return step

    conformance_options = {"mode": "fp32"}

    @classmethod
    def options_from_genes(cls, values):
        return {"mode": "fp32", "layer_precision": dict(values["precision"])}

    def reference_model(self, original):
        """Quantization writes a file and leaves the float model as it was (unless QAT ran)."""
        return None if self.qat_ran_ else original

    def validate(self) -> None:
        _check_mode(self.mode, "quantize.mode")
        if self.int8_format not in STATIC_FORMATS:
            raise ConfigError("quantize.int8_format", f"one of {list(STATIC_FORMATS)}", self.int8_format)
        for name, p in (self.layer_precision or {}).items():
            if p not in precision_names("layer"):
                raise ConfigError(f"quantize.layer_precision.{name}", precision_text("layer"), p)

    def export_tolerance(self) -> float | None:
        """The largest output difference the file may show against the eager model (``None``:
        int8 changes outputs by design; only top-1 agreement is reported)."""
        # a layer below 8 bits computes with its encoded values, as the eager model does: fp32 arithmetic
        precisions = {self.mode, *(p if p in RUNTIME_PRECISIONS else "fp32" for p in (self.layer_precision or {}).values())}
        if precisions <= {"fp32"}:
            return FP32_TOLERANCE
        return FP16_TOLERANCE if precisions <= {"fp32", "fp16"} else None

    def layer_values(self, layers):
        default = "int8" if self.mode.startswith("int8") else self.mode
        return {n: (self.layer_precision or {}).get(n, default) for n in layers}

    def _quantize(self, model, data, input_shape) -> bytes:
        """The file; layers at a precision below 8 bits are encoded first (``model``'s weights
        take their values, in place) and held at their bits in it (``held_`` says how)."""
        calib = None if data is None else data.x_train[: self.n_calibration]
        precision = expand_precision(model, self.layer_precision or {})
        lowbit = encode_lowbit(model, precision, data)
        self.held_ = {}
        written = quantize_model(model, input_shape, mode=self.mode, calibration=calib,
                                 layer_precision={n: "fp32" if n in lowbit else p for n, p in precision.items()},
                                 per_channel=self.per_channel, int8_format=self.int8_format, lowbit=lowbit,
                                 held=self.held_)
        self.lowbit_ = {n: precision[n] for n in lowbit}
        if lowbit:  # what is stored is the file (a cluster step before counted its own encoding)
            self.storage_bytes_ = len(written)
        return written

    def not_done(self):
        """Layers asked for a precision below 8 bits that the file holds at fp32, with why."""
        return {n: how.removeprefix("fp32: ") for n, how in getattr(self, "held_", {}).items() if how.startswith("fp32")}

    def lowbit_report(self) -> dict:
        """Where the file holds layers below 8 bits: which run there and which are only stored."""
        held = getattr(self, "held_", {})
        if not held:
            return {}
        run = [n for n, how in held.items() if how.startswith("MatMulNBits")]
        stored = [n for n, how in held.items() if n not in run and not how.startswith("fp32")]
        out = {"lowbit_layers": held, "run_at_low_bits": run, "stored_at_low_bits": stored}
        convs = [n for n in stored if self.lowbit_.get(n, "").startswith("int")]
        if convs:
            out["notes"] = [f"{', '.join(convs)} stored below 8 bits but run at fp32 (ONNX Runtime has no low-bit "
                            "convolution; only Linear layers run as MatMulNBits)"]
        return out

    def _fit(self, model, data, teacher, input_shape):
        _check_mode(self.mode, "quantize.mode")
        if self.mode == "int8-auto":
            return self._fit_auto(model, data, input_shape)
        static = self.mode == "int8" or "int8" in (self.layer_precision or {}).values()
        if static and not isinstance(input_shape, ExampleInputs):  # example inputs calibrate by themselves
            _require_data(data, "quantize")
        self.onnx_ = self._quantize(model, data, input_shape)
        self.precision_ = self.mode
        self.qat_ran_, self.qat_val_accuracy_ = False, None
        self.val_accuracy_ = self.float_val_accuracy_ = None
        if data is not None:
            quality = Quality.of(getattr(data, "task", None))
            self.val_accuracy_ = file_quality(data, self.onnx_, quality=quality)
            if not quality.is_accuracy:
                self.float_val_accuracy_ = model_quality(data, model.eval(), quality=quality)
            elif isinstance(data.x_val, torch.Tensor):
                with torch.no_grad():
                    self.float_val_accuracy_ = float((model.eval()(data.x_val).argmax(1) == data.y_val).float().mean())
            else:  # read from disk in batches
                self.float_val_accuracy_ = evaluate(model.eval(), data.x_val, data.y_val)["accuracy"]
            drop = quality.worse_by(self.float_val_accuracy_, self.val_accuracy_)
            if static and self.qat is not None and self.qat.epochs > 0 and drop > self.max_drop:
                model = self._qat(model, data, teacher, input_shape)
        key = Quality.of(getattr(data, "task", None)).key  # val_accuracy, or the task's val_<primary>
        self.report_ = {"mode": self.mode, key: self.val_accuracy_,
                        f"float_{key}": self.float_val_accuracy_, "qat": self.qat_ran_,
                        f"qat_{key}": self.qat_val_accuracy_, **self.lowbit_report(),
                        **size_report(self.onnx_)}
        return model

    def _fit_auto(self, model, data, input_shape):
        """Both int8 files (static needs data to calibrate), measured; the one that helps kept."""
        quality = Quality.of(getattr(data, "task", None))
        modes = ["int8-dynamic"] + (["int8"] if data is not None else [])
        files = {mode: quantize_model(model, input_shape, mode=mode,
                                      calibration=None if data is None else data.x_train[: self.n_calibration],
                                      layer_precision=expand_precision(model, self.layer_precision or {}),
                                      per_channel=self.per_channel) for mode in modes}
        found = {}
        for mode, blob in files.items():
            found[mode] = {"latency_ms": OnnxRuntimeLatency(batch_size=1, repeats=AUTO_REPEATS).measure(blob, input_shape),
                           "bytes": len(blob)}
            if data is not None:
                found[mode][quality.key] = file_quality(data, blob, quality=quality)
        if data is not None:
            best_acc = quality.best([f[quality.key] for f in found.values()])
            eligible = [m for m, f in found.items() if quality.worse_by(best_acc, f[quality.key]) <= self.max_drop]
        else:
            eligible = list(found)
        chosen = min(eligible, key=lambda m: found[m]["latency_ms"])
        self.onnx_, self.precision_, self.chosen_ = files[chosen], chosen, chosen
        self.qat_ran_, self.qat_val_accuracy_ = False, None
        self.val_accuracy_ = found[chosen].get(quality.key)
        self.float_val_accuracy_ = None
        if data is not None and not quality.is_accuracy:
            self.float_val_accuracy_ = model_quality(data, model.eval(), quality=quality)
        elif data is not None:
            with torch.no_grad():
                self.float_val_accuracy_ = float((model.eval()(data.x_val).argmax(1) == data.y_val).float().mean())
        key = quality.key
        self.report_ = {"mode": self.mode, "chosen": chosen, "candidates": found, key: self.val_accuracy_,
                        f"float_{key}": self.float_val_accuracy_, "qat": False, f"qat_{key}": None,
                        **size_report(self.onnx_)}
        return model

    def _qat(self, model, data, teacher, input_shape):
        tuned = copy.deepcopy(model)
        layers = fake_quantize_weights(tuned)
        try:
            self.qat.run(tuned, data, teacher)
        finally:
            for m in layers:
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        candidate = self._quantize(tuned, data, input_shape)
        quality = Quality.of(getattr(data, "task", None))
        acc = self.qat_val_accuracy_ = file_quality(data, candidate, quality=quality)
        if not quality.better(acc, self.val_accuracy_):
            return model  # QAT did not help: keep the post-training result
        self.onnx_, self.val_accuracy_, self.qat_ran_ = candidate, acc, True
        return tuned
