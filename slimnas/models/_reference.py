"""Reference models from the literature, used by benchmarks and tests."""

from __future__ import annotations

from torch import nn


def mnist1d_paper_cnn(n_classes: int = 10, width: int = 25) -> nn.Module:
    """The MNIST-1D paper's CNN (Greydanus 2020): 5,210 parameters, ~31.7k MACs per sample
    (``width`` channels in each convolution; the paper's 25 by default)."""
    return nn.Sequential(
        nn.Conv1d(1, width, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(width, width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * width, n_classes),
    )


def cifar_resnet18(n_classes: int = 10, *, width: int = 64, in_channels: int = 3) -> nn.Module:
    """ResNet-18 in its CIFAR layout (He et al. 2016; a 3x3 stem without max pooling, four stages
    of two basic blocks at ``width``, 2x, 4x, 8x channels): 11.2M parameters and 0.56G MACs on
    32x32 inputs at ``width=64``; ``width=16`` is a sixteenth of that, trainable on a CPU."""
    from slimnas.models._resnet import ResNet, ResNetSpec, ResStage

    spec = ResNetSpec(stem=width, stages=(ResStage(width, 2, 1), ResStage(2 * width, 2, 2),
                                          ResStage(4 * width, 2, 2), ResStage(8 * width, 2, 2)))
    return ResNet(spec, (in_channels, 32, 32), n_classes)
