"""Model families (each one registered file: spec, config keys, sampling, builder), layer
factories, once-for-all supernets of the CNN and MLP families, reference models, and users' own
models."""

from slimnas.models._attention import SelfAttention, SplitMultiheadAttention
from slimnas.models._builder import build_model
from slimnas.models._cnn import CNNFamily, CNNSpec, ConvBlock, ConvLayer, ConvNet
from slimnas.models._elastic import (
    ELASTIC,
    BaseSupernet,
    ElasticBatchNorm,
    ElasticConv,
    ElasticLinear,
)
from slimnas.models._layers import ACTIVATIONS, LowRank, make_activation
from slimnas.models._mlp import MLP, MLPFamily, MLPSpec
from slimnas.models._mobilenet import InvertedBlock, MobileNet, MobileNetFamily, MobileNetSpec
from slimnas.models._nb201 import NB201Family, NB201Net, NB201Spec
from slimnas.models._reference import cifar_resnet18, mnist1d_paper_cnn
from slimnas.models._resnet import ResNet, ResNetFamily, ResNetSpec, ResStage
from slimnas.models._rnn import RecurrentNet, RNNFamily, RNNSpec
from slimnas.models._supernets import ElasticCNN, ElasticMLP, cnn_supernet, mlp_supernet
from slimnas.models._transformer import TransformerFamily, TransformerNet, TransformerSpec
from slimnas.models._user import check_outputs, import_model, load_weights

__all__ = [
    "ACTIVATIONS",
    "ELASTIC",
    "MLP",
    "BaseSupernet",
    "ElasticBatchNorm",
    "ElasticCNN",
    "ElasticConv",
    "ElasticLinear",
    "ElasticMLP",
    "CNNFamily",
    "CNNSpec",
    "ConvBlock",
    "ConvLayer",
    "ConvNet",
    "InvertedBlock",
    "LowRank",
    "MLPFamily",
    "MLPSpec",
    "MobileNet",
    "MobileNetFamily",
    "MobileNetSpec",
    "NB201Family",
    "NB201Net",
    "NB201Spec",
    "RNNFamily",
    "RNNSpec",
    "RecurrentNet",
    "ResNet",
    "ResNetFamily",
    "ResNetSpec",
    "ResStage",
    "SelfAttention",
    "SplitMultiheadAttention",
    "TransformerFamily",
    "TransformerNet",
    "TransformerSpec",
    "build_model",
    "check_outputs",
    "cifar_resnet18",
    "cnn_supernet",
    "import_model",
    "load_weights",
    "make_activation",
    "mlp_supernet",
    "mnist1d_paper_cnn",
]
