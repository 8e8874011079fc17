"""A model as the list of operators a runtime executes, each an :class:`OpConfig`
(convolution, linear, pooling, element-wise, recurrent) with its channels, kernel, stride and
input size: the unit a device profile's latency table is keyed by (as Once-for-All's and
nn-Meter's latency tables are).

The list follows what ONNX Runtime runs: BatchNorm after a convolution is folded into it at
export, and an activation right after a convolution or linear layer is fused into it; views
(flatten, reshape, dropout, identity) cost nothing. The model is traced with ``torch.fx``
(residual additions and concatenations included); a model ``torch.fx`` cannot trace falls back
to its leaf modules.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

CONV = (nn.Conv1d, nn.Conv2d)
BN = (nn.BatchNorm1d, nn.BatchNorm2d)
#: activations ONNX Runtime fuses into the convolution or Gemm before them
FUSABLE = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
           nn.Hardtanh: "hardtanh"}
ELEMENTWISE = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.Sigmoid: "sigmoid",
               nn.Tanh: "tanh", nn.GELU: "gelu", nn.SiLU: "silu", nn.Hardswish: "hardswish", nn.ELU: "elu",
               nn.Hardtanh: "hardtanh"}
FREE = (nn.Flatten, nn.Dropout, nn.Identity, nn.Unflatten)
POOLS = {nn.MaxPool1d: "maxpool1d", nn.MaxPool2d: "maxpool2d", nn.AvgPool1d: "avgpool1d", nn.AvgPool2d: "avgpool2d"}
GAPS = {nn.AdaptiveAvgPool1d: "gap1d", nn.AdaptiveAvgPool2d: "gap2d"}
VIEWS = {"flatten", "view", "reshape", "contiguous", "squeeze", "unsqueeze", "size", "dim", "float", "detach"}


@dataclass(frozen=True)
class OpConfig:
    """One operator as a latency table keys it. ``cin``/``cout`` are channels (features for
    linear layers, hidden units for recurrent ones); ``size`` the input's spatial size
    (``(L,)`` or ``(H, W)``; ``()`` for a linear layer); ``variant`` what else changes the
    kernel (recurrent layers: ``l<layers>``, ``-bi``)."""

    op: str
    cin: int
    cout: int
    size: tuple[int, ...] = ()
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    act: str = ""
    variant: str = ""

    @property
    def group(self) -> str:
        """Everything but the channels: ops of one group differ in ``cin``/``cout`` only, so the
        table interpolates across channels inside a group."""
        parts = [self.op, "x".join(map(str, self.size)) or "-"]
        if self.op.startswith(("conv", "maxpool", "avgpool")):
            parts += [f"k{self.kernel}", f"s{self.stride}", f"p{self.padding}"]
        if self.op.startswith("conv"):
            parts += [f"d{self.dilation}", f"g{self.groups}"]
        if self.act:
            parts.append(self.act)
        if self.variant:
            parts.append(self.variant)
        return "|".join(parts)

    @property
    def macs(self) -> int:
        """Multiply-accumulates per sample (0 for ops without weights)."""
        if self.op.startswith("conv"):
            out = 1
            for s in self.size:
                out *= (s + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1
            return out * self.cout * (self.cin // self.groups) * self.kernel ** len(self.size)
        if self.op == "linear":
            return self.cin * self.cout
        if self.op in ("gru", "lstm"):
            gates = 3 if self.op == "gru" else 4
            return self.size[0] * gates * (self.cin + self.cout) * self.cout
        return 0

    @property
    def elements(self) -> int:
        """Input elements per sample."""
        n = self.cin
        for s in self.size:
            n *= s
        return n

    def with_channels(self, cin: int, cout: int) -> OpConfig:
        return replace(self, cin=cin, cout=cout)

    def to_dict(self) -> dict:
        """``{"op": group, "cin": ..., "cout": ...}``: how a profile's table writes the op."""
        return {"op": self.group, "cin": self.cin, "cout": self.cout}

    @classmethod
    def from_dict(cls, d: dict) -> OpConfig:
        return cls.from_group(d["op"], d["cin"], d["cout"])

    @classmethod
    def from_group(cls, group: str, cin: int, cout: int) -> OpConfig:
        """The op of ``group`` (see :attr:`group`) with these channels; ``ValueError`` when the
        group is not one this class writes."""
        parts = group.split("|")
        if len(parts) < 2 or not parts[0]:
            raise ValueError(f"an op group such as 'conv1d|40|k5|s2|p1|d1|g1|relu', got {group!r}")
        size = () if parts[1] == "-" else tuple(int(s) for s in parts[1].split("x"))
        fields: dict = {}
        for tok in parts[2:]:
            if len(tok) > 1 and tok[0] in "kspdg" and tok[1:].isdigit():
                fields[{"k": "kernel", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}[tok[0]]] = int(tok[1:])
            elif tok in ACT_MODULES and "act" not in fields:
                fields["act"] = tok
            else:
                fields["variant"] = tok
        op = cls(parts[0], int(cin), int(cout), size, **fields)
        if op.group != group:
            raise ValueError(f"an op group in slimnas's order (op|size|k|s|p|d|g|act|variant), got {group!r}")
        return op

    def input_shape(self) -> tuple[int, ...]:
        """One sample's input shape for :meth:`build`."""
        if self.op in ("gru", "lstm"):
            return (self.size[0], self.cin)
        return (self.cin, *self.size)

    def build(self) -> nn.Module:
        """A module that runs exactly this op (to time it alone)."""
        return _OpModule(self)


class _Add(nn.Module):
    def forward(self, x):
        return x + x


class _Concat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=1)


class _Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2).contiguous()


class _Recurrent(nn.Module):
    def __init__(self, layer: nn.RNNBase) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x)[0]


ACT_MODULES = {"relu": nn.ReLU, "relu6": nn.ReLU6, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
               "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "elu": nn.ELU,
               "hardtanh": nn.Hardtanh}


def _OpModule(op: OpConfig) -> nn.Module:
    nd = len(op.size)
    act = [ACT_MODULES[op.act]()] if op.act else []
    if op.op.startswith("conv"):
        conv = {1: nn.Conv1d, 2: nn.Conv2d}[nd](op.cin, op.cout, op.kernel, stride=op.stride, padding=op.padding,
                                                dilation=op.dilation, groups=op.groups)
        return nn.Sequential(conv, *act).eval()
    if op.op == "linear":
        return nn.Sequential(nn.Linear(op.cin, op.cout), *act).eval()
    if op.op in ("gru", "lstm"):
        layers = int(op.variant.split("-")[0][1:]) if op.variant else 1
        cls = nn.GRU if op.op == "gru" else nn.LSTM
        return _Recurrent(cls(op.cin, op.cout, num_layers=layers, batch_first=True,
                              bidirectional=op.variant.endswith("-bi"))).eval()
    if op.op in ("maxpool1d", "maxpool2d", "avgpool1d", "avgpool2d"):
        cls = {v: k for k, v in POOLS.items()}[op.op]
        return cls(op.kernel, stride=op.stride, padding=op.padding).eval()
    if op.op in ("gap1d", "gap2d"):
        return {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[nd](1)
    if op.op in ("bn1d", "bn2d"):
        bn = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[nd](op.cin).eval()
        with torch.no_grad():
            bn.running_var.uniform_(0.5, 1.5)
        return bn
    if op.op == "add":
        return _Add()
    if op.op == "concat":
        return _Concat()
    if op.op == "transpose":
        return _Transpose()
    if op.op in ACT_MODULES:
        return ACT_MODULES[op.op]()
    raise ValueError(f"no module for op {op.op!r}")


def _spatial(shape) -> tuple[int, ...]:
    return tuple(int(s) for s in shape[2:])


def _conv_op(m: nn.Module, shape) -> OpConfig:
    pad = m.padding[0] if isinstance(m.padding, tuple) else 0
    return OpConfig(f"conv{len(shape) - 2}d", m.in_channels, m.out_channels, _spatial(shape), kernel=m.kernel_size[0],
                    stride=m.stride[0], padding=int(pad), dilation=m.dilation[0], groups=m.groups)


def _leaf_op(m: nn.Module, shape, out_shape) -> OpConfig | None:
    """The op a leaf module runs on an input of ``shape`` (batch first), or ``None`` when free."""
    if isinstance(m, CONV):
        return _conv_op(m, shape)
    if isinstance(m, nn.Linear):
        return OpConfig("linear", m.in_features, m.out_features)
    if isinstance(m, (nn.GRU, nn.LSTM)):
        variant = f"l{m.num_layers}" + ("-bi" if m.bidirectional else "")
        seq = int(shape[1] if m.batch_first else shape[0])
        return OpConfig("gru" if isinstance(m, nn.GRU) else "lstm", m.input_size, m.hidden_size, (seq,),
                        variant=variant if variant != "l1" else "")
    c, size = int(shape[1]), _spatial(shape)
    if type(m) in POOLS:
        k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
        s = m.stride if isinstance(m.stride, int) else m.stride[0]
        p = m.padding if isinstance(m.padding, int) else m.padding[0]
        return OpConfig(POOLS[type(m)], c, c, size, kernel=int(k), stride=int(s or k), padding=int(p))
    if type(m) in GAPS:
        return OpConfig(GAPS[type(m)], c, c, size)
    if isinstance(m, BN):
        return OpConfig(f"bn{max(1, len(size))}d", c, c, size)
    if type(m) in ELEMENTWISE:
        return OpConfig(ELEMENTWISE[type(m)], c, c, size)
    if isinstance(m, FREE) or not any(True for _ in m.parameters(recurse=False)):
        return None
    return OpConfig(f"other:{type(m).__name__}", c, int(out_shape[1]) if len(out_shape) > 1 else c, size)


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters are (``meta`` for a model built only for its shapes)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def model_ops(model: nn.Module, input_shape: tuple[int, ...]) -> list[OpConfig]:
    """The operators ``model`` runs on one sample of ``input_shape``, in order (see the module
    docstring for what is fused and what is free).

    Example:
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> [op.group for op in model_ops(mnist1d_paper_cnn(), (1, 40))][:2]
        ['conv1d|40|k5|s2|p1|d1|g1|relu', 'conv1d|19|k3|s2|p1|d1|g1|relu']
    """
    return fx_or_hooks(model, input_shape, _fx_ops, _hook_ops)


def fx_or_hooks(model: nn.Module, input_shape: tuple[int, ...], by_fx: Callable, by_hooks: Callable):
    """``by_fx(model, input_shape)``, a walk of the graph torch.fx traces, or ``by_hooks`` (the
    leaf modules, seen by forward hooks) where it cannot trace the model (control flow); in eval
    mode, on one thread, the model's mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with one_thread():
            try:
                return by_fx(model, input_shape)
            except Exception:  # noqa: BLE001 - not traceable by torch.fx: leaf modules
                return by_hooks(model, input_shape)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def one_thread():
    """PyTorch on one CPU thread for the duration (tiny forward passes run many times faster than
    on a pool of threads contending for a busy machine), the caller's setting restored after."""
    prev = torch.get_num_threads()
    if prev != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if prev != 1:
            torch.set_num_threads(prev)


def _fx_ops(model: nn.Module, input_shape) -> list[OpConfig]:
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    gm = symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.randn(1, *input_shape, device=_device(model)))
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    ops: list[OpConfig] = []
    #: node -> index in ops of the conv/linear whose output it still is (BN folded, act fused)
    fusable: dict = {}
    for node in nodes:
        shape_in = _shape(node.args[0]) if node.args and hasattr(node.args[0], "meta") else None
        out = _shape(node)
        if node.op == "call_module":
            m = modules[node.target]
            src = node.args[0] if node.args else None
            sole = src is not None and hasattr(src, "users") and len(src.users) == 1
            if isinstance(m, BN) and sole and src in fusable and ops[fusable[src]].op.startswith("conv"):
                fusable[node] = fusable[src]  # folded into the convolution at export
                continue
            if type(m) in FUSABLE and sole and src in fusable and not ops[fusable[src]].act:
                ops[fusable[src]] = replace(ops[fusable[src]], act=FUSABLE[type(m)])
                continue
            if shape_in is None:
                if isinstance(m, (nn.GRU, nn.LSTM)) and src is not None:
                    shape_in = _shape(src)
                if shape_in is None:
                    continue
            op = _leaf_op(m, shape_in, out or shape_in)
            if op is None:
                if src in fusable and isinstance(m, FREE):
                    fusable[node] = fusable[src]
                continue
            ops.append(op)
            if op.op.startswith("conv") or op.op == "linear":
                fusable[node] = len(ops) - 1
        elif node.op in ("call_function", "call_method"):
            name = getattr(node.target, "__name__", str(node.target))
            if node.target in (operator.add, torch.add, operator.iadd) or name in ("add", "add_", "iadd"):
                tensors = [a for a in node.args if hasattr(a, "meta") and _shape(a) is not None]
                if len(tensors) == 2 and out is not None and len(out) >= 2:
                    ops.append(OpConfig("add", int(out[1]), int(out[1]), _spatial(out)))
            elif node.target is torch.cat and out is not None and len(out) >= 2:
                ops.append(OpConfig("concat", int(out[1]), int(out[1]), _spatial(out)))
            elif name in ("transpose", "permute") and shape_in is not None and len(shape_in) == 3:
                ops.append(OpConfig("transpose", int(shape_in[1]), int(shape_in[1]), (int(shape_in[2]),)))
            elif name in ("relu", "gelu", "sigmoid", "tanh", "silu") and out is not None and len(out) >= 2:
                ops.append(OpConfig(name, int(out[1]), int(out[1]), _spatial(out)))
    return ops


def _hook_ops(model: nn.Module, input_shape) -> list[OpConfig]:
    order: list[tuple[nn.Module, tuple, tuple]] = []

    def hook(mod, args, out):
        if args and isinstance(args[0], torch.Tensor):
            o = out[0] if isinstance(out, tuple) else out
            order.append((mod, tuple(args[0].shape), tuple(o.shape) if isinstance(o, torch.Tensor) else ()))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.randn(1, *input_shape, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
    ops: list[OpConfig] = []
    prev_fusable = False
    for m, shape, out in order:
        if isinstance(m, BN) and prev_fusable and ops[-1].op.startswith("conv"):
            continue
        if type(m) in FUSABLE and prev_fusable and not ops[-1].act:
            ops[-1] = replace(ops[-1], act=FUSABLE[type(m)])
            prev_fusable = False
            continue
        op = _leaf_op(m, shape, out or shape)
        prev_fusable = op is not None and (op.op.startswith("conv") or op.op == "linear")
        if op is not None:
            ops.append(op)
    return ops
