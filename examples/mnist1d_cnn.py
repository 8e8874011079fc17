"""A small 1-D CNN for MNIST-1D (inputs of shape (1, 40), 10 classes): the model the README's
tour compresses. ``slimnas compress --model examples/mnist1d_cnn.py:build`` builds it with
``build()``; without ``--weights`` slimnas trains it first (``--train-epochs``)."""

from torch import nn


def build() -> nn.Module:
    """Three convolutions (32, 32 and 32 channels, kernel 5, strides 2, 2, 1), batch norm and
    ReLU after each, global average pooling and a linear classifier: about 12k parameters."""
    layers, channels = [], 1
    for stride in (2, 2, 1):
        layers += [nn.Conv1d(channels, 32, 5, stride=stride, padding=2), nn.BatchNorm1d(32), nn.ReLU()]
        channels = 32
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 10))
