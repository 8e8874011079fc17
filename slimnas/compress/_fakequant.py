"""Static int8 simulated in PyTorch, as ONNX Runtime's QDQ quantization computes it: fast enough to
score thousands of (sub-network, per-layer precision) pairs, where writing and running each
quantized file would not be.

For every layer at int8 (a Linear or convolution, batch norm folded into it as the ONNX export
folds it): its input and its output are rounded to uint8 on a per-tensor min-max range
calibrated on training samples (the range always holds 0), its weights to int8 per output
channel, symmetric. That is what ``quantize_model`` asks ONNX Runtime for (QDQ, per-channel
weights, min-max calibration); the fused integer kernels ONNX Runtime then runs can round
differently, so the simulation is an estimate: a caller that relies on it checks it against
the real file on a few models (:func:`slimnas.export.onnx_accuracy` of ``quantize_model``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from slimnas.export._int8 import int8_weight_max

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _fold(layer: nn.Module, bn: nn.Module) -> nn.Module:
    if isinstance(layer, nn.Linear):
        return fuse_linear_bn_eval(layer, bn)
    return fuse_conv_bn_eval(layer, bn)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every batch norm that directly follows a Linear or
    convolution folded into it and replaced by the identity: in a ``Sequential`` (layer, then
    batch norm) and in a block with ``conv`` and ``bn`` attributes."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(getattr(module, "conv", None), WEIGHTED) and isinstance(getattr(module, "bn", None), BATCHNORMS):
            module.conv, module.bn = _fold(module.conv, module.bn), nn.Identity()
        if isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], WEIGHTED) and isinstance(module[i + 1], BATCHNORMS):
                    module[i], module[i + 1] = _fold(module[i], module[i + 1]), nn.Identity()
    return model


def _uint8(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``x`` through QuantizeLinear/DequantizeLinear at uint8 over ``[low, high]`` (holding 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0
    if scale <= 0:
        return x
    zero = min(255.0, max(0.0, round(-low / scale)))
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def int8_weights(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 on the grid the quantized files use
    (scale = max |w| / :func:`slimnas.export.int8_weight_max`), dequantized."""
    top = int8_weight_max()
    flat = w.reshape(w.shape[0], -1)
    scale = (flat.abs().amax(1).clamp_min(1e-12) / top).reshape(-1, *([1] * (w.dim() - 1)))
    return torch.clamp(torch.round(w / scale), -top, top) * scale


@torch.no_grad()
def simulate_quantized(model: nn.Module, layer_precision: Mapping[str, str], calibration: torch.Tensor) -> nn.Module:
    """A copy of ``model`` that computes as its ONNX file quantized with ``layer_precision``
    (module name -> ``int8`` or ``fp32``; layers not named stay fp32) would, approximately (see
    the module docstring). ``calibration``: the training samples that set activation ranges."""
    folded = fold_batchnorm(model)
    modules = dict(folded.named_modules())
    names = [n for n, p in layer_precision.items() if p == "int8"]
    unknown = [n for n in names if not isinstance(modules.get(n), WEIGHTED)]
    if unknown:
        raise ValueError(f"not a Linear or convolution of the model: {unknown[0]!r}")
    ranges: dict[str, list[float]] = {}

    def record(name):
        def hook(module, args, out):
            x = args[0]
            r = ranges.setdefault(name, [float("inf"), float("-inf"), float("inf"), float("-inf")])
            r[0], r[1] = min(r[0], float(x.min())), max(r[1], float(x.max()))
            r[2], r[3] = min(r[2], float(out.min())), max(r[3], float(out.max()))
        return hook

    hooks = [modules[n].register_forward_hook(record(n)) for n in names]
    try:
        folded(calibration)
    finally:
        for h in hooks:
            h.remove()
    for n in names:
        layer, (in_lo, in_hi, out_lo, out_hi) = modules[n], ranges[n]
        layer.weight.copy_(int8_weights(layer.weight))
        layer.register_forward_pre_hook(lambda m, args, lo=in_lo, hi=in_hi: (_uint8(args[0], lo, hi),))
        layer.register_forward_hook(lambda m, args, out, lo=out_lo, hi=out_hi: _uint8(out, lo, hi))
    return folded
