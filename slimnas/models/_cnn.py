"""The CNN family: 1-D or 2-D convolutions with optional batch norm, residual skips and pooling.

Token ids (text: ``vocab_size > 0``, which a search on text data sets) are embedded first, as
wide as the first layer's channels (Kim 2014's convolutions over word vectors). A per-token
head (``per_token``, which a search of a per-token task sets) classifies every position of the
last layer's features; its layers keep the sequence's length (stride 1, no pooling), and a
``causal`` one pads each convolution on the left only, so a position reads itself and the
earlier ones (van den Oord et al. 2016's causal convolutions).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.models._layers import (
    ACTIVATION_KEY,
    bn_cls,
    conv_cls,
    conv_ndim,
    make_activation,
    pool_cls,
)
from slimnas.models._tokens import check_length_kept, embed_channels, sequence_padding, token_inputs
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import DROPOUT, layer_count, positive_int


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: ``channels`` out, square ``kernel``, 'same'-style padding."""

    channels: int
    kernel: int = 3
    stride: int = 1
    dilation: int = 1
    pool: str = "none"  # "none" | "max" | "avg": a 2-wide pooling after the layer


@dataclass(frozen=True)
class CNNSpec:
    """Convolutional network for 1-D (``(C, L)``) or 2-D (``(C, H, W)``) inputs."""

    family: ClassVar[str] = "cnn"
    layers: tuple[ConvLayer, ...]
    activation: str = "relu"
    batch_norm: bool = True
    residual: bool = False  # skip around each layer; a 1x1 projection where the shape changes
    head: str = "gap"  # "gap": global average pooling; "flatten": flatten all positions
    dropout: float = 0.0
    vocab_size: int = 0  # > 0: inputs are token ids below it, embedded (a search on text sets it)
    #: "": the pooled head; "tokens" / "causal": one prediction per position (slimnas.models._tokens)
    per_token: str = ""


class ConvBlock(nn.Module):
    """conv -> (BN) -> (+ skip) -> activation -> (pool)."""

    def __init__(self, in_ch: int, layer: ConvLayer, ndim: int, *, activation: str, batch_norm: bool,
                 residual: bool, pool: bool, causal: bool = False) -> None:
        super().__init__()
        self.shift, pad = sequence_padding(layer.kernel, layer.dilation, causal)  # causal: padded on the left
        self.conv = conv_cls(ndim)(in_ch, layer.channels, layer.kernel, stride=layer.stride, padding=pad,
                                   dilation=layer.dilation, bias=not batch_norm)
        self.bn = bn_cls(ndim)(layer.channels) if batch_norm else nn.Identity()
        self.shortcut: nn.Module | None = None
        if residual:
            if in_ch == layer.channels and layer.stride == 1:
                self.shortcut = nn.Identity()
            else:  # projection shortcut (He et al. 2016, option B)
                proj = [conv_cls(ndim)(in_ch, layer.channels, 1, stride=layer.stride, bias=not batch_norm)]
                if batch_norm:
                    proj.append(bn_cls(ndim)(layer.channels))
                self.shortcut = nn.Sequential(*proj)
        self.act = make_activation(activation)
        self.pool = pool_cls(layer.pool, ndim)(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(self.shift(x)))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.pool(self.act(y))


class ConvNet(nn.Module):
    def __init__(self, spec: CNNSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        # token ids -> (N, channels of the first layer, L)
        self.per_token, self.embed, input_shape = token_inputs(
            spec, input_shape, spec.layers[0].channels if spec.layers else 1, "cnn")
        check_length_kept(self.per_token, any(lay.stride > 1 or lay.pool != "none" for lay in spec.layers),
                          "space.cnn.stride", [(lay.stride, lay.pool) for lay in spec.layers])
        ndim = conv_ndim(input_shape, "cnn")
        blocks, in_ch, size = [], input_shape[0], min(input_shape[1:])
        for layer in spec.layers:
            size = (size - 1) // layer.stride + 1
            pool = layer.pool != "none" and size >= 2
            size = size // 2 if pool else size
            blocks.append(ConvBlock(in_ch, layer, ndim, activation=spec.activation, batch_norm=spec.batch_norm,
                                    residual=spec.residual, pool=pool, causal=self.per_token == "causal"))
            in_ch = layer.channels
        self.features = nn.Sequential(*blocks)
        gap = [nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)] if spec.head == "gap" else []
        self.pool = nn.Identity() if self.per_token else nn.Sequential(*gap, nn.Flatten())
        with torch.no_grad():
            n_features = in_ch if self.per_token else self.pool(self.features(torch.zeros(2, *input_shape))).shape[1]
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(embed_channels(self.embed, x))
        if self.per_token:  # (N, L, outputs): one prediction per position
            return self.classifier(self.dropout(h.transpose(1, 2)))
        return self.classifier(self.dropout(self.pool(h)))


@register_family("cnn")
class CNNFamily(BaseFamily):
    spec = CNNSpec
    data_kinds = ("tabular", "sequence", "image", "text")
    optional_fields = ("vocab_size", "per_token")  # set for text and per-token tasks only
    keys = {
        "n_layers": layer_count({"low": 2, "high": 5}),
        "channels": positive_int([4, 8, 16, 24, 32]),
        "kernel": Key(int, "odd integers >= 1", [3, 5, 7], lambda v: v >= 1 and v % 2 == 1),
        "stride": positive_int([1, 2]),
        "dilation": positive_int([1]),
        "pool": Key(str, "'none', 'max' or 'avg'", ["none"], lambda v: v in ("none", "max", "avg")),
        "activation": ACTIVATION_KEY,
        "batch_norm": Key(bool, "true/false", [True]),
        "residual": Key(bool, "true/false", [False, True]),
        "head": Key(str, "'gap' or 'flatten'", ["gap", "flatten"], lambda v: v in ("gap", "flatten")),
        "dropout": DROPOUT,
    }

    def sample(self, draw) -> CNNSpec:
        n = draw("n_layers")
        layers = tuple(
            ConvLayer(channels=draw("channels", i), kernel=draw("kernel", i), stride=draw("stride", i),
                      dilation=draw("dilation", i), pool=draw("pool", i))
            for i in range(n)
        )
        return CNNSpec(layers=layers, activation=draw("activation"), batch_norm=draw("batch_norm"),
                       residual=draw("residual"), head=draw("head"), dropout=draw("dropout"))

    def build(self, spec: CNNSpec, input_shape, n_classes) -> nn.Module:
        return ConvNet(spec, tuple(input_shape), n_classes)

    def per_token(self, spec: CNNSpec, mode: str) -> CNNSpec:
        """A per-token head keeps the sequence's length: every layer at stride 1, unpooled (and
        the pooled head's ``head`` at its default, unused)."""
        layers = tuple(dataclasses.replace(lay, stride=1, pool="none") for lay in spec.layers)
        return dataclasses.replace(spec, layers=layers, head="gap", per_token=mode)

    def summary(self, spec: CNNSpec) -> str:
        """``cnn 8k5s2-16k3M gap relu bn res``: channels ``k`` kernel, then stride, dilation and
        pooling where they are not 1 / none; the head (a per-token one: ``tokens`` or ``causal``),
        activation, batch norm, residual, and the vocabulary of token-id inputs."""
        layers = "-".join(
            f"{lay.channels}k{lay.kernel}" + (f"s{lay.stride}" if lay.stride > 1 else "")
            + (f"d{lay.dilation}" if lay.dilation > 1 else "") + {"max": "M", "avg": "A"}.get(lay.pool, "")
            for lay in spec.layers
        )
        flags = [spec.per_token or spec.head, spec.activation] + (["bn"] if spec.batch_norm else [])
        flags += (["res"] if spec.residual else []) + ([f"vocab{spec.vocab_size}"] if spec.vocab_size else [])
        return f"cnn {layers} {' '.join(flags)}"

    def supernet(self, params, input_shape, n_classes, *, fixed=None, kernel_transform=False,
                 field="strategy.options.fixed", vocab_size=0, per_token=""):
        from slimnas.models._supernets import cnn_supernet  # the supernet module builds on this one

        return cnn_supernet(params, tuple(input_shape), n_classes, fixed=fixed, kernel_transform=kernel_transform,
                            field=field, vocab_size=vocab_size, per_token=per_token)

    def from_dict(self, d: dict) -> CNNSpec:
        return CNNSpec(**{**d, "layers": tuple(ConvLayer(**layer) for layer in d["layers"])})
