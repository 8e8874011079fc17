"""Weight-only low-bit integers (``int4``, ``int2``, ``int8``): per-channel or group-wise scales,
written into the ONNX file at their bits.

Linear layers become ONNX Runtime's ``MatMulNBits`` (``com.microsoft``): they run at b bits.
ONNX Runtime has no low-bit convolution, so a convolution's weight is stored packed and unpacked
to fp32 when the file loads: its bytes count as stored at b bits, never as run at b bits (the
step's report says which layer is which). Activations stay fp32.

Rounding is round-to-nearest (``rtn``) or GPTQ (``gptq``, calibrated on training samples:
:mod:`slimnas.compress._gptq`).
"""

from __future__ import annotations

import copy

import torch

from slimnas.compress._base import BaseCompressor, register_compressor, weighted_layers
from slimnas.compress._gptq import gptq_weight, input_hessians
from slimnas.compress._lowbit import RUNS_LOW_BIT, LowBitLayers, lowbit_onnx, uniform_codes
from slimnas.compress._quality import Quality, file_quality
from slimnas.errors import ConfigError
from slimnas.export._proto import size_report

BITS = (2, 4, 8)  # what MatMulNBits runs
ROUNDINGS = ("rtn", "gptq")
COMPUTE = {"fp32": 0, "int8": 4}  # -> MatMulNBits' accuracy_level
EXPORT_TOLERANCE = 1e-3  # the file computes with the same b-bit values in fp32


@register_compressor("int4")
class WeightOnlyQuantizer(LowBitLayers, BaseCompressor):
    """Quantize Linear and convolution weights to ``bits``-bit integers, activations left fp32.

    Args:
        bits: 4 (``--quantize int4``), 2 (``int2``) or 8.
        group_size: weights of an output channel's row per scale; 0 for one scale per channel.
        rounding: ``rtn`` (round to nearest) or ``gptq`` (calibrated on ``n_calibration``
            training samples).
        layers: module names (every Linear and convolution by default).
        compute: how ``MatMulNBits`` multiplies: ``fp32`` (the dequantized weights, exactly what
            the eager model computes) or ``int8`` (ONNX Runtime's ``accuracy_level=4``: the
            activations rounded to int8 per block inside the kernel; several times faster on
            CPUs with integer dot products, outputs within about 1e-2; checked by top-1 agreement).

    Learned state: ``model_`` (the model computing with the b-bit weights, dequantized),
    ``weights_`` (layer -> :class:`~slimnas.compress._lowbit.LowBitWeight`), ``onnx_``,
    ``precision_``, ``held_`` (layer -> how the file holds it), ``val_accuracy_`` (ONNX Runtime).

    Example:
        >>> q = WeightOnlyQuantizer(bits=4, group_size=16).fit(torch.nn.Linear(64, 8), input_shape=(64,))
        >>> q.held_
        {'': 'MatMulNBits: stored and run at 4 bits'}
    """

    def __init__(self, bits: int = 4, *, group_size: int = 32, rounding: str = "rtn",
                 layers: list[str] | None = None, n_calibration: int = 256, compute: str = "fp32") -> None:
        self._store(locals())

    order = 90
    precision_family = "int"  # its layers are int{bits}
    retrains = False
    writes_file = True
    layer_column = "precision"
    layer_off = "fp32"
    precisions = {"int4": {"bits": 4}, "int2": {"bits": 2}}
    conformance_options = {"bits": 4, "group_size": 16}

    def validate(self) -> None:
        if self.bits not in BITS or isinstance(self.bits, bool):
            raise ConfigError("int4.bits", f"one of {list(BITS)} (what ONNX Runtime's MatMulNBits runs)", self.bits)
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or not (
                self.group_size == 0 or (self.group_size >= 16 and self.group_size & (self.group_size - 1) == 0)):
            raise ConfigError("int4.group_size", "0 (per channel) or a power of two >= 16", self.group_size)
        if self.rounding not in ROUNDINGS:
            raise ConfigError("int4.rounding", f"one of {list(ROUNDINGS)}", self.rounding)
        if self.compute not in COMPUTE:
            raise ConfigError("int4.compute", f"one of {list(COMPUTE)}", self.compute)

    def export_tolerance(self) -> float | None:
        """fp32 compute reproduces the eager model; int8 compute changes outputs by design."""
        return EXPORT_TOLERANCE if self.compute == "fp32" else None

    def reference_model(self, original):
        """The original with each weight rounded on its block's grid here, in PyTorch."""
        if self.rounding != "rtn":
            return None
        model = copy.deepcopy(original)
        modules = dict(model.named_modules())
        half = 2 ** (self.bits - 1)
        with torch.no_grad():
            for name in self.weights_:
                w = modules[name].weight
                rows = w.reshape(w.shape[0], -1)
                n = rows.shape[1]
                g = n if self.group_size == 0 else min(self.group_size, n)
                pad = torch.nn.functional.pad(rows, (0, -n % g)).reshape(rows.shape[0], -1, g)
                top = torch.gather(pad, 2, pad.abs().argmax(2, keepdim=True))
                s = torch.where(top == 0, torch.ones_like(top), top / -half)
                q = (torch.clamp(torch.round(pad / s), -half, half - 1) * s).reshape(rows.shape[0], -1)[:, :n]
                w.copy_(q.reshape(w.shape))
        return model.eval()

    def encode(self, model, data, names: list[str]) -> dict:
        """``names``' weights as :class:`~slimnas.compress._lowbit.LowBitWeight` at ``bits`` bits,
        and ``model``'s weights (changed in place) their dequantized values; ``rounded_`` says
        which layers GPTQ rounded (calibrated on ``data``'s training samples)."""
        modules = dict(model.named_modules())
        hessians = {}
        if self.rounding == "gptq":
            if data is None:
                raise ConfigError("int4.rounding", "training samples to calibrate GPTQ (give the data), or 'rtn'", "gptq")
            hessians = input_hessians(model, names, data.x_train[: self.n_calibration])
        weights = {}
        for name in names:
            w = modules[name].weight.detach().cpu().numpy()
            if name in hessians:
                weights[name] = gptq_weight(w, hessians[name], self.bits, self.group_size)
            else:
                weights[name] = uniform_codes(w, self.bits, self.group_size)
            with torch.no_grad():
                modules[name].weight.copy_(torch.from_numpy(weights[name].dequantize()))
        self.rounded_ = {n: ("gptq" if n in hessians else "rtn") for n in names}
        return weights

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        names = weighted_layers(model, self.layers)
        self.weights_ = self.encode(model, data, names)
        model = model.eval()
        self.onnx_, self.held_ = lowbit_onnx(model, input_shape, self.weights_, accuracy_level=COMPUTE[self.compute])
        self.precision_ = f"int{self.bits}"
        self.val_accuracy_ = None if data is None else file_quality(data, self.onnx_)
        run = [n for n, how in self.held_.items() if how == RUNS_LOW_BIT.format(bits=self.bits)]
        self.report_ = {"bits": self.bits, "group_size": self.group_size, "rounding": self.rounding,
                        "compute": self.compute,
                        Quality.of(getattr(data, "task", None)).key: self.val_accuracy_, "layers": self.held_, "rounded": self.rounded_,
                        "run_at_low_bits": run,
                        "stored_at_low_bits": [n for n, how in self.held_.items() if n not in run and not how.startswith("fp32")],
                        "low_bit_bytes": int(sum(self.weights_[n].n_bytes for n in names
                                                 if not self.held_[n].startswith("fp32"))),
                        **size_report(self.onnx_)}
        stored = self.report_["stored_at_low_bits"]
        if stored:  # bytes stored at b bits, arithmetic at fp32: said where the user reads the result
            self.report_["notes"] = [f"{', '.join(stored)} stored at {self.bits} bits but run at fp32 (ONNX Runtime "
                                     f"has no low-bit convolution; only Linear layers run as MatMulNBits)"]
        return model


