"""Model builders: architecture specs -> ``nn.Module``; string-keyed layer factories."""

from slimnas.models._builder import MLP, ConvBlock, ConvNet, RecurrentNet, build_model
from slimnas.models._layers import ACTIVATIONS, make_activation
from slimnas.models._reference import mnist1d_paper_cnn

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "ConvBlock",
    "ConvNet",
    "RecurrentNet",
    "build_model",
    "make_activation",
    "mnist1d_paper_cnn",
]
