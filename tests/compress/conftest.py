"""Shared fixtures: tiny models of every family and a small slice of MNIST-1D."""

from __future__ import annotations

import pytest
import torch
from compress_models import SHAPE

from slimnas.data import DataSplits, load_dataset
from slimnas.models import MLPSpec, build_model, mnist1d_paper_cnn
from slimnas.spaces import TrainSpec
from slimnas.training import fit

# Tiny models: one thread avoids oversubscription on shared CPUs (and is faster at this size).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data() -> DataSplits:
    full = load_dataset("mnist1d")
    return DataSplits(name="mnist1d-small", x_train=full.x_train[:768], y_train=full.y_train[:768],
                      x_val=full.x_val[:256], y_val=full.y_val[:256], x_test=full.x_test[:256],
                      y_test=full.y_test[:256], n_classes=full.n_classes)


@pytest.fixture(scope="session")
def trained_mlp(data) -> torch.nn.Module:
    model = build_model(MLPSpec(widths=(64, 32)), SHAPE, 10)
    torch.manual_seed(0)
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=15, lr=1e-2), seed=0)
    return model.eval()


@pytest.fixture(scope="session")
def trained_cnn(data) -> torch.nn.Module:
    model = mnist1d_paper_cnn()
    torch.manual_seed(0)
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=15, lr=1e-2), seed=0)
    return model.eval()
