"""Tiny models of every family for the compression tests (imported by the test modules)."""

from __future__ import annotations

import torch

from slimnas.models import build_model, mnist1d_paper_cnn
from slimnas.spaces import CNNSpec, ConvLayer, MLPSpec, RNNSpec

SHAPE = (1, 40)


def _randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so masks are really tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def residual_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    spec = CNNSpec(layers=(ConvLayer(8, kernel=3), ConvLayer(8, kernel=3), ConvLayer(16, kernel=3, stride=2)),
                   residual=True, batch_norm=True, head="gap")
    return _randomize_bn(build_model(spec, SHAPE, 10))


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomize_bn(build_model(MLPSpec(widths=(32, 16), batch_norm=True), SHAPE, 10))


def gru() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(RNNSpec(cell="gru", hidden=12), SHAPE, 10).eval()


def paper_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return mnist1d_paper_cnn().eval()


MODELS = {"residual_cnn": residual_cnn, "mlp": mlp, "gru": gru, "paper_cnn": paper_cnn}
