"""Reference models from the literature, used by benchmarks and tests."""

from __future__ import annotations

from torch import nn


def mnist1d_paper_cnn(n_classes: int = 10) -> nn.Module:
    """The MNIST-1D paper's CNN (Greydanus 2020): 5,210 parameters, ~31.7k MACs per sample."""
    return nn.Sequential(
        nn.Conv1d(1, 25, 5, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv1d(25, 25, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(125, n_classes),
    )
