import os
from pathlib import Path

import pytest
import torch
import yaml

from slimnas.registry import load_plugins

torch.set_num_threads(1)

# Every file in tests/plugins/ registers a toy strategy, compressor or metric. They are loaded as a
# user's plug-ins are (SLIMNAS_PLUGINS, so command-line subprocesses see them too), and the
# conformance suite runs over them with the built-ins.
PLUGINS = sorted(str(p) for p in (Path(__file__).parent / "plugins").glob("*.py"))
os.environ["SLIMNAS_PLUGINS"] = ",".join(PLUGINS)
load_plugins()

TINY_SPACE = {
    "family": ["cnn", "mlp"],
    "cnn": {"n_layers": {"low": 1, "high": 2}, "channels": [4, 8], "kernel": [3, 5], "stride": [2],
            "residual": [False, True], "head": ["gap", "flatten"]},
    "mlp": {"n_layers": 1, "width": [8, 16]},
}


@pytest.fixture(scope="session")
def tiny_space():
    """The seconds-long search space, for fixtures of any scope (``conftest`` is not importable by
    name: tests/compress has one too)."""
    return TINY_SPACE


@pytest.fixture(scope="module")
def mnist1d_cnn():
    """``(spec, model, data)``: a 3-layer CNN trained 4 epochs on MNIST-1D, in eval mode (the
    model --auto compresses in test_joint.py and test_joint_hardware.py)."""
    from slimnas.data import load_dataset
    from slimnas.models import CNNSpec, ConvLayer, build_model
    from slimnas.spaces import TrainSpec
    from slimnas.training import fit

    data = load_dataset("mnist1d")
    torch.manual_seed(0)
    spec = CNNSpec(layers=(ConvLayer(16, 5, 2), ConvLayer(16, 3, 2), ConvLayer(16, 3, 2)), head="flatten")
    model = build_model(spec, data.input_shape, data.n_classes)
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=4, lr=0.01))
    return spec, model.eval(), data


CONV_NET = """
import torch

def build():
    return torch.nn.Sequential(
        torch.nn.Conv1d(1, 8, 5, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv1d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(80, 10))
"""


@pytest.fixture(scope="session")
def conv_net_file(tmp_path_factory) -> Path:
    """A model file whose ``build()`` returns a small 1-D CNN for MNIST-1D's ``(1, 40)`` inputs
    and 10 classes: the input model of the compress tests, written once for fixtures of any scope."""
    path = tmp_path_factory.mktemp("conv_net") / "net.py"
    path.write_text(CONV_NET)
    return path


@pytest.fixture
def tiny_config(tmp_path):
    """A YAML config for a seconds-long search on digits."""
    def make(**extra):
        cfg = {"data": {"dataset": "digits"}, "space": TINY_SPACE,
               "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}, **extra}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path
    return make


@pytest.fixture
def cli_here(capsys):
    """``slimnas ARGS`` run in this process, as a ``CompletedProcess`` (``returncode``, ``stdout``,
    ``stderr``): for the checks that need no process of their own (each ``python -m slimnas``
    spends seconds importing PyTorch; every command keeps a real subprocess test elsewhere)."""
    import subprocess

    from slimnas.cli import main

    def run(*args):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out.out, out.err)
    return run
