"""Model families (each one registered file: spec, config keys, sampling, builder), layer
factories, once-for-all supernets of the CNN and MLP families, reference models, and users' own
models."""

from slimnas.models import (
    _attention,  # noqa: F401 (loaded as before)
    _layers,  # noqa: F401 (loaded as before)
    _supernets,  # noqa: F401 (loaded as before)
)
from slimnas.models._builder import build_model
from slimnas.models._centernet import CenterNetSpec, DetStage
from slimnas.models._cnn import CNNSpec, ConvLayer
from slimnas.models._elastic import BaseSupernet
from slimnas.models._io import ExampleInputs, flatten_outputs
from slimnas.models._mlp import MLPSpec
from slimnas.models._mobilenet import InvertedBlock, MobileNetSpec
from slimnas.models._nb201 import NB201Spec
from slimnas.models._reference import cifar_resnet18, mnist1d_paper_cnn
from slimnas.models._resnet import ResNetSpec, ResStage
from slimnas.models._rnn import RNNSpec
from slimnas.models._transformer import TransformerSpec
from slimnas.models._user import check_outputs

__all__ = [
    "BaseSupernet",
    "CNNSpec",
    "CenterNetSpec",
    "ConvLayer",
    "DetStage",
    "ExampleInputs",
    "InvertedBlock",
    "MLPSpec",
    "MobileNetSpec",
    "NB201Spec",
    "RNNSpec",
    "ResNetSpec",
    "ResStage",
    "TransformerSpec",
    "build_model",
    "check_outputs",
    "cifar_resnet18",
    "flatten_outputs",
    "mnist1d_paper_cnn",
]
