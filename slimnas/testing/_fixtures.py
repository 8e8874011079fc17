"""Tiny models of every family and tiny data: what the conformance checks run on."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimnas.data import DataSplits
from slimnas.data._base import make_splits
from slimnas.models import CNNSpec, ConvLayer, MLPSpec, RNNSpec, build_model, mnist1d_paper_cnn

SHAPE = (1, 40)


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so masks and references are really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def residual_cnn() -> nn.Module:
    torch.manual_seed(0)
    spec = CNNSpec(layers=(ConvLayer(8, kernel=3), ConvLayer(8, kernel=3), ConvLayer(16, kernel=3, stride=2)),
                   residual=True, batch_norm=True, head="gap")
    return _randomize_bn(build_model(spec, SHAPE, 10))


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(build_model(MLPSpec(widths=(32, 16), batch_norm=True), SHAPE, 10))


def gru() -> nn.Module:
    torch.manual_seed(0)
    return build_model(RNNSpec(cell="gru", hidden=12), SHAPE, 10).eval()


def paper_cnn() -> nn.Module:
    torch.manual_seed(0)
    return mnist1d_paper_cnn().eval()


#: name -> factory of a small, untrained model of every family, on ``(1, 40)`` inputs, 10 classes
TINY_MODELS = {"residual_cnn": residual_cnn, "mlp": mlp, "gru": gru, "paper_cnn": paper_cnn}

#: the input shape an export check gives each tiny model: the GRU reads any length, and some tool
#: chains unroll it per time step (ExecuTorch lowers each step's products as a partition of its
#: own), so it is exported on 10 steps rather than 40; the others need :data:`SHAPE`
EXPORT_SHAPES = {name: (1, 10) if name == "gru" else SHAPE for name in TINY_MODELS}


def tiny_data(n: int = 240, seed: int = 0) -> DataSplits:
    """Random sequences of ``SHAPE`` with 10 balanced classes, split 60/20/20."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    x = rng.normal(size=(n, *SHAPE)).astype(np.float32) + y[:, None, None] * 0.3
    return make_splits("tiny", x, y, None, None, val_fraction=0.25, test_fraction=0.2, seed=seed, standardize=False)
