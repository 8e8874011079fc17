"""What a microcontroller-class device limits besides latency: the RAM the activations need
and the bytes of the int8 file it stores (MCUNet, Lin et al. 2020, budgets both).

``ram_bytes`` is the peak, over the steps of a layer-by-layer execution at batch 1, of the
activations alive at once (a step's inputs, its output, and tensors kept for later, such as
residual skips), times the bytes per activation value (``activation_bytes`` in the run's
settings: 1 on an int8-only device, else 4). Views (flatten, reshape, dropout) take no memory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.export import export_onnx
from slimnas.export._int8 import quantize_onnx
from slimnas.export._proto import lean
from slimnas.measure._metric import BYTE_UNITS, BaseMetric, register_metric
from slimnas.measure._ops import FREE, VIEWS, fx_or_hooks

ALIASING_FUNCS = {"getitem", "flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous", "size", "dim"}


def _numel(node) -> int:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        return 0
    n = 1
    for s in meta.shape:
        n *= int(s)
    return n


def peak_activation_elements(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """The most activation values alive at once when ``model`` runs one sample step by step."""
    return fx_or_hooks(model, input_shape, _fx_peak, _hook_peak)  # by hooks: largest input + output of a leaf module


def _fx_peak(model: nn.Module, input_shape) -> int:
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    gm = symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.randn(1, *input_shape))
    modules = dict(gm.named_modules())
    nodes = [n for n in gm.graph.nodes if n.op != "output"]
    index = {n: i for i, n in enumerate(nodes)}

    def aliases(n) -> bool:
        if n.op == "call_module":
            return isinstance(modules[n.target], FREE)
        name = getattr(n.target, "__name__", str(n.target))
        return n.op in ("call_function", "call_method") and (name in ALIASING_FUNCS or name in VIEWS)

    # a view's storage is its source's: the source lives as long as any view of it
    root = {}
    for n in nodes:
        src = n.args[0] if n.args and hasattr(n.args[0], "op") else None
        root[n] = root.get(src, src) if aliases(n) and src is not None else n
    last_use = {}
    for n in nodes:
        for user in n.users:
            if user in index:
                last_use[root[n]] = max(last_use.get(root[n], index[n]), index[user])
            else:  # the graph's output
                last_use[root[n]] = len(nodes)
    peak = 0
    for i in range(len(nodes)):
        alive = {root[m] for m in nodes[: i + 1] if last_use.get(root[m], index[root[m]]) >= i}
        peak = max(peak, sum(_numel(m) for m in alive if not aliases(m)))
    return peak


def _hook_peak(model: nn.Module, input_shape) -> int:
    peak = 0

    def hook(mod, args, out):
        nonlocal peak
        o = out[0] if isinstance(out, tuple) else out
        if args and isinstance(args[0], torch.Tensor) and isinstance(o, torch.Tensor):
            peak = max(peak, args[0].numel() + o.numel())

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model(torch.randn(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    return peak


@register_metric("ram_bytes")
class RamBytes(BaseMetric):
    """Peak activation memory of one sample run layer by layer (see the module docstring)."""

    unit, units, when = "bytes", BYTE_UNITS, "model"
    description = "peak activation memory at batch 1 (x activation_bytes: 1 on int8-only devices, else 4)"

    def measure(self, ctx):
        if ctx.model is None:
            raise ConfigError("metric.ram_bytes", "a candidate with its model to trace")
        return peak_activation_elements(ctx.model, ctx.input_shape) * int(ctx.settings.get("activation_bytes", 4))


@register_metric("int8_bytes")
class Int8Bytes(BaseMetric):
    """Bytes of the model's file as an int8-only device stores it: static int8 (QDQ, per-channel
    weights), lean. Known from the model's structure before training."""

    unit, units, when = "bytes", BYTE_UNITS, "model"
    description = "bytes of the model's static int8 ONNX file (QDQ, per-channel)"

    def measure(self, ctx):
        if ctx.model is None:
            raise ConfigError("metric.int8_bytes", "a candidate with its model to quantize")
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(ctx.model, Path(tmp) / "m.onnx", ctx.input_shape, verify=False)
            data = quantize_onnx(path, fmt="qdq")
        return len(lean(onnx.load_from_string(data)).SerializeToString())
