"""Builders: an architecture spec plus the data's shapes -> an ``nn.Module``."""

from __future__ import annotations

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._layers import bn_cls, conv_cls, make_activation, pool_cls
from slimnas.spaces._spec import ArchSpec, CNNSpec, ConvLayer, MLPSpec, RNNSpec


class ConvBlock(nn.Module):
    """conv -> (BN) -> (+ skip) -> activation -> (pool)."""

    def __init__(self, in_ch: int, layer: ConvLayer, ndim: int, *, activation: str, batch_norm: bool,
                 residual: bool, pool: bool) -> None:
        super().__init__()
        pad = layer.dilation * (layer.kernel - 1) // 2
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
        y = self.bn(self.conv(x))
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.pool(self.act(y))


class ConvNet(nn.Module):
    def __init__(self, spec: CNNSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        ndim = len(input_shape) - 1
        if ndim not in (1, 2):
            raise ConfigError("space.family", "inputs shaped (C, L) or (C, H, W) for 'cnn'", f"input {input_shape}")
        blocks, in_ch, size = [], input_shape[0], min(input_shape[1:])
        for layer in spec.layers:
            size = (size - 1) // layer.stride + 1
            pool = layer.pool != "none" and size >= 2
            size = size // 2 if pool else size
            blocks.append(ConvBlock(in_ch, layer, ndim, activation=spec.activation, batch_norm=spec.batch_norm,
                                    residual=spec.residual, pool=pool))
            in_ch = layer.channels
        self.features = nn.Sequential(*blocks)
        gap = [nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)] if spec.head == "gap" else []
        self.pool = nn.Sequential(*gap, nn.Flatten())
        with torch.no_grad():
            n_features = self.pool(self.features(torch.zeros(2, *input_shape))).shape[1]
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(self.features(x))))


class MLP(nn.Module):
    def __init__(self, spec: MLPSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = 1
        for d in input_shape:
            n_in *= d
        for width in spec.widths:
            layers.append(nn.Linear(n_in, width))
            if spec.batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(make_activation(spec.activation))
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            n_in = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(n_in, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class RecurrentNet(nn.Module):
    """GRU/LSTM over the last axis; features are the channels (rows too, for 2-D inputs)."""

    def __init__(self, spec: RNNSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        n_features = 1
        for d in input_shape[:-1]:
            n_features *= d
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[spec.cell]
        self.rnn = rnn_cls(n_features, spec.hidden, num_layers=spec.n_layers, batch_first=True,
                           bidirectional=spec.bidirectional)
        self.hidden = spec.hidden
        self.bidirectional = spec.bidirectional
        self.classifier = nn.Linear(spec.hidden * (2 if spec.bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.flatten(1, -2).transpose(1, 2)  # (N, L, features)
        out, _ = self.rnn(seq)
        last = out[:, -1, : self.hidden]
        if self.bidirectional:  # the backward direction has read the whole sequence at t=0
            last = torch.cat([last, out[:, 0, self.hidden :]], dim=1)
        return self.classifier(last)


def build_model(spec: ArchSpec, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Build the network a spec describes.

    Example:
        >>> from slimnas.spaces import MLPSpec
        >>> build_model(MLPSpec(widths=(32,)), (1, 40), 10)(torch.zeros(2, 1, 40)).shape
        torch.Size([2, 10])
    """
    if isinstance(spec, CNNSpec):
        return ConvNet(spec, tuple(input_shape), n_classes)
    if isinstance(spec, MLPSpec):
        return MLP(spec, tuple(input_shape), n_classes)
    if isinstance(spec, RNNSpec):
        return RecurrentNet(spec, tuple(input_shape), n_classes)
    raise TypeError(f"not an architecture spec: {spec!r}")
