"""Elastic layers and the supernet contract (Cai et al. 2020, "Once-for-All: Train One Network and
Specialize it for Efficient Deployment", ICLR).

An elastic layer holds the weights of its largest configuration and runs any smaller one on a
slice of them: the first ``k`` output channels (or units), the first input channels its input
has, and, for convolutions, the centre of the largest kernel, optionally passed through OFA's
learned kernel transform (one small matrix per kernel size, shared by all channels). A
:class:`BaseSupernet` chains them into every sub-network of a space; a sub-network is the
family's own spec, so what the search picks is built by the family's normal builder.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimnas.errors import ConfigError
from slimnas.spaces import Param

#: the elastic dimensions a supernet may have
ELASTIC = ("depth", "width", "kernel")


class ElasticBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the first ``x.shape[1]`` channels of its affine parameters and running
    statistics (OFA's dynamic batch norm). In training mode the running statistics of those
    channels are updated in place, so a sub-network's statistics can be recalibrated on the
    supernet itself."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input with a channel axis, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or self.running_mean is None
        mean = self.running_mean[:c] if self.running_mean is not None else None
        var = self.running_var[:c] if self.running_var is not None else None
        return F.batch_norm(x, mean, var, self.weight[:c], self.bias[:c], use_batch, factor, self.eps)


class ElasticLinear(nn.Module):
    """A linear layer of at most ``max_in`` inputs and ``max_out`` outputs; runs the first
    ``out_features`` outputs on the first ``x.shape[1]`` inputs."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        ref = nn.Linear(max_in, max_out)  # PyTorch's own initialisation
        self.weight, self.bias = nn.Parameter(ref.weight.detach().clone()), nn.Parameter(ref.bias.detach().clone())

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        return F.linear(x, self.weight[:out_features, : x.shape[-1]], self.bias[:out_features])


class ElasticConv(nn.Module):
    """A 1-D or 2-D convolution of at most ``max_in`` -> ``max_out`` channels and the largest of
    ``kernels``; a smaller kernel is the centre of the next larger one's weights, through a
    learned ``k^d x k^d`` transform when ``transform`` (OFA's kernel transformation, initialised
    to the identity, so it starts as the plain centre crop)."""

    def __init__(self, max_in: int, max_out: int, kernels: Sequence[int], ndim: int, *, stride: int = 1,
                 dilation: int = 1, bias: bool = True, transform: bool = False, causal: bool = False) -> None:
        super().__init__()
        self.kernels = tuple(sorted(set(int(k) for k in kernels), reverse=True))
        self.ndim, self.stride, self.dilation, self.causal = ndim, stride, dilation, causal
        k = self.kernels[0]
        ref = (nn.Conv1d if ndim == 1 else nn.Conv2d)(max_in, max_out, k, bias=bias)
        self.weight = nn.Parameter(ref.weight.detach().clone())
        self.bias = nn.Parameter(ref.bias.detach().clone()) if bias else None
        self.transforms = nn.ParameterDict()
        if transform:
            for small in self.kernels[1:]:
                self.transforms[f"k{small}"] = nn.Parameter(torch.eye(small**ndim))

    def weight_for(self, out_c: int, in_c: int, kernel: int) -> torch.Tensor:
        """The ``[out_c, in_c, kernel(, kernel)]`` weights of that configuration."""
        w = self.weight[:out_c, :in_c]
        for small in self.kernels[1:]:
            if small < kernel:
                break
            start = (w.shape[-1] - small) // 2
            w = w[..., start : start + small] if self.ndim == 1 else w[..., start : start + small, start : start + small]
            if f"k{small}" in self.transforms:
                shape = w.shape
                w = F.linear(w.reshape(-1, small**self.ndim), self.transforms[f"k{small}"]).reshape(shape)
        return w

    def forward(self, x: torch.Tensor, out_c: int, kernel: int) -> torch.Tensor:
        w = self.weight_for(out_c, x.shape[1], kernel)
        b = self.bias[:out_c] if self.bias is not None else None
        reach = self.dilation * (kernel - 1)
        conv = F.conv1d if self.ndim == 1 else F.conv2d
        if self.causal:  # all the padding on the left (as ConvBlock's causal convolution)
            return conv(F.pad(x, (reach, 0)), w, b, stride=self.stride, dilation=self.dilation)
        return conv(x, w, b, stride=self.stride, padding=reach // 2, dilation=self.dilation)


def param_choices(param: Param, field: str) -> list:
    """Every value of an elastic dimension: a choice's values, or each integer of a range."""
    if param.values is not None:
        return sorted(param.values)
    if not param.integer:
        raise ConfigError(field, "a list of values or an integer range for a supernet's elastic dimension",
                          param.to_config())
    return list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))


def allows(param: Param, value: Any) -> bool:
    """Whether the space parameter ``param`` may take ``value``."""
    if param.values is not None:
        return value in param.values
    return isinstance(value, (int, float)) and not isinstance(value, bool) and param.low <= value <= param.high


def default_value(param: Param) -> Any:
    """A fixed gene's value when the supernet's skeleton does not say: the first choice, or the
    low end of a range."""
    return param.values[0] if param.values is not None else (int(param.low) if param.integer else param.low)


def fixed_value(params: dict[str, Param], fixed: dict, key: str, field: str, default: Any = None) -> Any:
    """The skeleton's value of a whole-model key: ``fixed[key]`` if given (checked against the
    space), else ``default`` when the space allows it, else the first choice."""
    if key in fixed:
        value = fixed[key]
        if isinstance(value, list) or not allows(params[key], value):
            raise ConfigError(f"{field}.{key}", f"a value the space allows ({params[key].to_config()!r})", value)
        return value
    if default is not None and allows(params[key], default):
        return default
    return default_value(params[key])


def fixed_layers(params: dict[str, Param], fixed: dict, key: str, field: str, n: int) -> list | None:
    """The skeleton's per-layer values of ``key`` (``n`` layers) from ``fixed``: a scalar for
    every layer or a list of ``n``; ``None`` when ``fixed`` does not say."""
    if key not in fixed:
        return None
    value = fixed[key]
    values = list(value) if isinstance(value, list) else [value] * n
    if len(values) != n or not all(allows(params[key], v) for v in values):
        raise ConfigError(f"{field}.{key}", f"one value or a list of {n} values the space allows "
                          f"({params[key].to_config()!r})", value)
    return values


class BaseSupernet(nn.Module, abc.ABC):
    """Weights shared by every sub-network of one family's space.

    Call order: build it for a space (the family's ``supernet``), :meth:`set_active` a
    sub-network (a spec of the family) and run it like any module; :meth:`largest`,
    :meth:`smallest` and :meth:`sample` give the sub-networks the sandwich rule trains;
    :meth:`sort_channels` reorders channels by importance (the largest network computes the same
    after it); :meth:`extract` returns a sub-network as the family's plain model with its
    inherited weights.
    """

    family: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.active: Any = None

    @property
    @abc.abstractmethod
    def choices(self) -> dict[str, list]:
        """The elastic dimensions and their values (``depth``, ``width``, ``kernel``)."""

    @abc.abstractmethod
    def compose(self, widths: Sequence[int], kernels: Sequence[int] | None = None) -> Any:
        """The sub-network of ``len(widths)`` layers with these widths (and kernels, where the
        family has them; the largest when ``None``), the skeleton's other choices."""

    @abc.abstractmethod
    def largest(self) -> Any:
        """The largest sub-network's spec (the whole supernet)."""

    @abc.abstractmethod
    def smallest(self, dims: Sequence[str] = ELASTIC) -> Any:
        """The smallest sub-network along ``dims`` (largest along the other dimensions)."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, dims: Sequence[str] = ELASTIC, depth: int | None = None) -> Any:
        """A sub-network drawn uniformly along ``dims`` (largest along the other dimensions);
        ``depth`` fixes its depth where ``dims`` has it (the other dimensions drawn at it)."""

    @abc.abstractmethod
    def contains(self, spec: Any) -> bool:
        """Whether ``spec`` is a sub-network of this supernet."""

    @abc.abstractmethod
    def macs(self, spec: Any) -> int:
        """Multiply-accumulates per sample of ``spec``, from its shapes alone (fast enough to
        draw sub-networks under a MAC budget at every training step)."""

    @abc.abstractmethod
    def extract(self, spec: Any) -> nn.Module:
        """``spec`` as the family's plain model, with the weights (and batch-norm statistics)
        it inherits; in eval mode it computes what the supernet computes at ``spec``."""

    @abc.abstractmethod
    def sort_channels(self) -> None:
        """Reorder every layer's channels by importance, most important first, so a narrower
        sub-network keeps the most important ones; the largest network's outputs do not change."""

    @abc.abstractmethod
    def genes(self, spec: Any) -> dict[str, Any]:
        """``spec`` as the values of the space's genes, ``{"n_layers": 3, "channels_0": 8, ...}``
        (per-layer keys suffixed with the layer index, as the family samples them)."""

    @abc.abstractmethod
    def encode(self, spec: Any) -> list[float]:
        """A fixed-length numeric description of ``spec`` (an accuracy predictor's input)."""

    @abc.abstractmethod
    def layer_groups(self, spec: Any) -> list[tuple[str, ...]]:
        """The plain model's Linear/conv layers by slot (a block's convolution and its
        projection shortcut; the classifier last): per-layer precision is chosen per slot."""

    def set_active(self, spec: Any) -> BaseSupernet:
        if not self.contains(spec):
            raise ValueError(f"not a sub-network of this {self.family} supernet: {spec!r}")
        self.active = spec
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, self.active if self.active is not None else self.largest())

    @abc.abstractmethod
    def run(self, x: torch.Tensor, spec: Any) -> torch.Tensor:
        """The outputs of sub-network ``spec``."""


def one_hot(value: Any, choices: Sequence) -> list[float]:
    return [1.0 if value == c else 0.0 for c in choices]


def permute_(tensor: torch.Tensor, perm: torch.Tensor, dim: int) -> None:
    """Reorder ``tensor`` along ``dim`` in place."""
    with torch.no_grad():
        tensor.copy_(tensor.index_select(dim, perm))


def importance_order(scores: torch.Tensor) -> torch.Tensor:
    """Indices that sort ``scores`` from the largest down (stable: ties keep their order)."""
    return torch.as_tensor(np.argsort(-scores.detach().cpu().numpy(), kind="stable"), dtype=torch.long)
