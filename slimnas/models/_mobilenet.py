"""The inverted-residual family (MobileNetV2, Sandler et al. 2018; squeeze-and-excitation as in
MobileNetV3, Howard et al. 2019), for 2-D images (``(C, H, W)``) or 1-D sequences (``(C, L)``).

Each block expands its input ``expand`` times with a 1x1 convolution, filters every channel on
its own with a ``kernel``-wide depthwise convolution (which may stride), optionally re-weights
the channels by squeeze-and-excitation (global pooling, a 1x1 bottleneck of a quarter of the
channels, a hard sigmoid gate), and projects back to ``width`` channels with a linear 1x1
convolution; the block's input is added where the shapes match.

Token ids (``vocab_size > 0``, which a search on text data sets) are embedded ``stem`` wide. A
per-token head (``per_token``, which a search of a per-token task sets) classifies every
position: every block at stride 1, and a ``causal`` one pads the stem's and each depthwise
convolution on the left only and has no squeeze-and-excitation (its pooling would read the
whole sequence), so a position reads itself and the earlier ones (:mod:`slimnas.models._tokens`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.models._layers import (
    ACTIVATIONS,
    bn_cls,
    conv_cls,
    conv_ndim,
    make_activation,
    pooled_head,
)
from slimnas.models._tokens import check_length_kept, embed_channels, sequence_padding, token_inputs
from slimnas.spaces import BaseFamily, Key, register_family
from slimnas.spaces._params import DROPOUT, layer_count, positive_int


@dataclass(frozen=True)
class InvertedBlock:
    """One inverted-residual block: ``width`` channels out, ``expand`` x wider inside."""

    width: int
    expand: int = 4
    kernel: int = 3
    stride: int = 1
    se: bool = False


@dataclass(frozen=True)
class MobileNetSpec:
    """Stem convolution, inverted-residual blocks, global pooling, linear classifier."""

    family: ClassVar[str] = "mobilenet"
    blocks: tuple[InvertedBlock, ...]
    stem: int = 16
    activation: str = "relu6"
    dropout: float = 0.0
    vocab_size: int = 0  # > 0: inputs are token ids below it, embedded (a search on text sets it)
    #: "": the pooled head; "tokens" / "causal": one prediction per position (slimnas.models._tokens)
    per_token: str = ""


class SqueezeExcite(nn.Module):
    """Channel gates from globally pooled features (Hu et al. 2018)."""

    def __init__(self, channels: int, ndim: int) -> None:
        super().__init__()
        conv = conv_cls(ndim)
        squeezed = max(1, channels // 4)
        self.pool = nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)
        self.reduce = conv(channels, squeezed, 1)
        self.act = nn.ReLU()
        self.expand = conv(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, block: InvertedBlock, ndim: int, activation: str, causal: bool = False) -> None:
        super().__init__()
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        hidden = in_ch * block.expand
        layers: list[nn.Module] = []
        if block.expand != 1:
            layers += [conv(in_ch, hidden, 1, bias=False), bn(hidden), make_activation(activation)]
        shift, pad = sequence_padding(block.kernel, causal=causal)
        layers += [shift] if causal else []  # causal: padded on the left (the body's indices as before otherwise)
        layers += [conv(hidden, hidden, block.kernel, stride=block.stride, padding=pad, groups=hidden,
                        bias=False), bn(hidden), make_activation(activation)]
        if block.se:
            layers.append(SqueezeExcite(hidden, ndim))
        layers += [conv(hidden, block.width, 1, bias=False), bn(block.width)]
        self.body = nn.Sequential(*layers)
        self.residual = block.stride == 1 and in_ch == block.width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, spec: MobileNetSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.per_token, self.embed, input_shape = token_inputs(spec, input_shape, spec.stem, "mobilenet")
        check_length_kept(self.per_token, any(b.stride > 1 for b in spec.blocks), "space.mobilenet.stride",
                          [b.stride for b in spec.blocks])
        causal = self.per_token == "causal"
        if causal and any(b.se for b in spec.blocks):
            raise ConfigError("space.mobilenet.se", "false with a causal head (squeeze-and-excitation pools the "
                              "whole sequence, later positions included)", [b.se for b in spec.blocks])
        ndim = conv_ndim(input_shape, "mobilenet")
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        self.stem_shift, pad = sequence_padding(3, causal=causal)
        self.stem = nn.Sequential(conv(input_shape[0], spec.stem, 3, padding=pad, bias=False), bn(spec.stem),
                                  make_activation(spec.activation))
        blocks, in_ch = [], spec.stem
        for block in spec.blocks:
            blocks.append(InvertedResidual(in_ch, block, ndim, spec.activation, causal))
            in_ch = block.width
        self.layers = nn.Sequential(*blocks)
        self.pool, self.dropout, self.classifier = pooled_head(ndim, spec.dropout, in_ch, n_classes,
                                                               per_token=bool(self.per_token))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem(self.stem_shift(embed_channels(self.embed, x))))
        return self.classifier(self.dropout(self.pool(h)))


@register_family("mobilenet")
class MobileNetFamily(BaseFamily):
    spec = MobileNetSpec
    data_kinds = ("tabular", "sequence", "image", "text")
    optional_fields = ("vocab_size", "per_token")  # set for text and per-token tasks only
    keys = {
        "n_blocks": layer_count({"low": 2, "high": 5}),
        "width": positive_int([16, 24, 32]),
        "expand": positive_int([2, 4, 6]),
        "kernel": Key(int, "odd integers >= 1", [3, 5], lambda v: v >= 1 and v % 2 == 1),
        "stride": positive_int([1, 2]),
        "se": Key(bool, "true/false", [False, True]),
        "stem": positive_int([16]),
        "activation": Key(str, f"activations from {sorted(ACTIVATIONS)}", ["relu6"], lambda v: v in ACTIVATIONS),
        "dropout": DROPOUT,
    }

    def sample(self, draw) -> MobileNetSpec:
        n = draw("n_blocks")
        blocks = tuple(InvertedBlock(width=draw("width", i), expand=draw("expand", i), kernel=draw("kernel", i),
                                     stride=draw("stride", i), se=draw("se", i)) for i in range(n))
        return MobileNetSpec(blocks=blocks, stem=draw("stem"), activation=draw("activation"), dropout=draw("dropout"))

    def build(self, spec: MobileNetSpec, input_shape, n_classes) -> nn.Module:
        return MobileNet(spec, tuple(input_shape), n_classes)

    def per_token(self, spec: MobileNetSpec, mode: str) -> MobileNetSpec:
        """A per-token head keeps the sequence's length: every block at stride 1; a causal one
        without squeeze-and-excitation (its pooling reads later positions)."""
        blocks = tuple(dataclasses.replace(b, stride=1, se=b.se and mode != "causal") for b in spec.blocks)
        return dataclasses.replace(spec, blocks=blocks, per_token=mode)

    def summary(self, spec: MobileNetSpec) -> str:
        """``mobilenet stem16 16e4k3-24e4k5s2se relu6``: the stem's width, then each block's width,
        expansion, kernel (stride where it is not 1, ``se`` with squeeze-excite), the activation;
        a per-token head (``tokens`` or ``causal``) and the vocabulary of token-id inputs where set."""
        blocks = "-".join(f"{b.width}e{b.expand}k{b.kernel}" + (f"s{b.stride}" if b.stride > 1 else "")
                          + ("se" if b.se else "") for b in spec.blocks)
        extra = [spec.per_token] * bool(spec.per_token) + [f"vocab{spec.vocab_size}"] * bool(spec.vocab_size)
        return " ".join([f"mobilenet stem{spec.stem} {blocks} {spec.activation}", *extra])

    def from_dict(self, d: dict) -> MobileNetSpec:
        return MobileNetSpec(**{**d, "blocks": tuple(InvertedBlock(**b) for b in d["blocks"])})
