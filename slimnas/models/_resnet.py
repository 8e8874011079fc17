"""The ResNet family: stages of residual basic blocks (He et al. 2016, "Deep Residual Learning
for Image Recognition"), for 2-D images (``(C, H, W)``) or 1-D sequences (``(C, L)``).

A 3x3 stem convolution, then stages of basic blocks (two 3x3 convolutions with batch norm
around an identity skip, or a 1x1 projection where the width or stride changes: option B),
global average pooling and a linear classifier. CIFAR's ResNet-18 layout is
``stem=64, stages=((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2))``.

Token ids (``vocab_size > 0``, which a search on text data sets) are embedded ``stem`` wide. A
per-token head (``per_token``, which a search of a per-token task sets) classifies every
position: every stage at stride 1, and a ``causal`` one pads each 3-wide convolution on the
left only, so a position reads itself and the earlier ones (as the CNN family's,
:mod:`slimnas.models._tokens`).
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
    pooled_head,
)
from slimnas.models._tokens import check_length_kept, embed_channels, sequence_padding, token_inputs
from slimnas.spaces import BaseFamily, register_family
from slimnas.spaces._params import DROPOUT, layer_count, positive_int


@dataclass(frozen=True)
class ResStage:
    """``blocks`` basic blocks of ``width`` channels; the first one strides by ``stride``."""

    width: int
    blocks: int = 2
    stride: int = 1


@dataclass(frozen=True)
class ResNetSpec:
    """Residual network of basic blocks."""

    family: ClassVar[str] = "resnet"
    stages: tuple[ResStage, ...]
    stem: int = 16
    activation: str = "relu"
    dropout: float = 0.0
    vocab_size: int = 0  # > 0: inputs are token ids below it, embedded (a search on text sets it)
    #: "": the pooled head; "tokens" / "causal": one prediction per position (slimnas.models._tokens)
    per_token: str = ""


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> act -> conv3x3 -> BN, plus the skip, then act."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, ndim: int, activation: str,
                 causal: bool = False) -> None:
        super().__init__()
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        self.shift1, pad = sequence_padding(3, causal=causal)  # causal: padded on the left
        self.conv1 = conv(in_ch, out_ch, 3, stride=stride, padding=pad, bias=False)
        self.bn1 = bn(out_ch)
        self.act1 = make_activation(activation)
        self.shift2, pad = sequence_padding(3, causal=causal)
        self.conv2 = conv(out_ch, out_ch, 3, padding=pad, bias=False)
        self.bn2 = bn(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv(in_ch, out_ch, 1, stride=stride, bias=False), bn(out_ch))
        self.act2 = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(self.shift2(self.act1(self.bn1(self.conv1(self.shift1(x)))))))
        return self.act2(y + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, spec: ResNetSpec, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.per_token, self.embed, input_shape = token_inputs(spec, input_shape, spec.stem, "resnet")
        check_length_kept(self.per_token, any(s.stride > 1 for s in spec.stages), "space.resnet.stride",
                          [s.stride for s in spec.stages])
        causal = self.per_token == "causal"
        ndim = conv_ndim(input_shape, "resnet")
        conv, bn = conv_cls(ndim), bn_cls(ndim)
        self.stem_shift, pad = sequence_padding(3, causal=causal)
        self.stem = nn.Sequential(conv(input_shape[0], spec.stem, 3, padding=pad, bias=False), bn(spec.stem),
                                  make_activation(spec.activation))
        blocks, in_ch = [], spec.stem
        for stage in spec.stages:
            for b in range(stage.blocks):
                blocks.append(BasicBlock(in_ch, stage.width, stage.stride if b == 0 else 1, ndim, spec.activation,
                                         causal))
                in_ch = stage.width
        self.layers = nn.Sequential(*blocks)
        self.pool, self.dropout, self.classifier = pooled_head(ndim, spec.dropout, in_ch, n_classes,
                                                               per_token=bool(self.per_token))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(self.stem(self.stem_shift(embed_channels(self.embed, x))))
        return self.classifier(self.dropout(self.pool(h)))


@register_family("resnet")
class ResNetFamily(BaseFamily):
    spec = ResNetSpec
    data_kinds = ("tabular", "sequence", "image", "text")
    optional_fields = ("vocab_size", "per_token")  # set for text and per-token tasks only
    keys = {
        "n_stages": layer_count({"low": 2, "high": 3}),
        "blocks": layer_count([1, 2]),
        "width": positive_int([16, 32, 64]),
        "stride": positive_int([1, 2]),
        "stem": positive_int([16]),
        "activation": ACTIVATION_KEY,
        "dropout": DROPOUT,
    }

    def sample(self, draw) -> ResNetSpec:
        n = draw("n_stages")
        stages = tuple(ResStage(width=draw("width", i), blocks=draw("blocks", i), stride=draw("stride", i))
                       for i in range(n))
        return ResNetSpec(stages=stages, stem=draw("stem"), activation=draw("activation"), dropout=draw("dropout"))

    def build(self, spec: ResNetSpec, input_shape, n_classes) -> nn.Module:
        return ResNet(spec, tuple(input_shape), n_classes)

    def per_token(self, spec: ResNetSpec, mode: str) -> ResNetSpec:
        """A per-token head keeps the sequence's length: every stage at stride 1."""
        stages = tuple(dataclasses.replace(s, stride=1) for s in spec.stages)
        return dataclasses.replace(spec, stages=stages, per_token=mode)

    def summary(self, spec: ResNetSpec) -> str:
        """``resnet stem16 16x2-32x2s2 relu``: the stem's width, then each stage's width x
        blocks (and its stride where it is not 1), the activation; a per-token head (``tokens``
        or ``causal``) and the vocabulary of token-id inputs where set."""
        stages = "-".join(f"{s.width}x{s.blocks}" + (f"s{s.stride}" if s.stride > 1 else "") for s in spec.stages)
        extra = [spec.per_token] * bool(spec.per_token) + [f"vocab{spec.vocab_size}"] * bool(spec.vocab_size)
        return " ".join([f"resnet stem{spec.stem} {stages} {spec.activation}", *extra])

    def from_dict(self, d: dict) -> ResNetSpec:
        return ResNetSpec(**{**d, "stages": tuple(ResStage(**s) for s in d["stages"])})
