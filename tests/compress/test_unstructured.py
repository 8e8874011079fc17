"""Unstructured magnitude pruning and the bytes of its sparse file."""

from __future__ import annotations

import pytest
import torch
from compress_models import MODELS, SHAPE
from torch import nn

from slimnas.compress import MagnitudePruner, Retrain
from slimnas.compress._unstructured import load_sparse, save_sparse, sparsity


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_reached_and_smallest_weights_removed(scope):
    model = MODELS["paper_cnn"]()
    p = MagnitudePruner(sparsity=0.7, scope=scope).fit(model, input_shape=SHAPE)
    assert p.sparsity_ == pytest.approx(0.7, abs=0.01)
    if scope == "layer":
        for name, mask in p.masks_.items():
            assert 1 - mask.float().mean() == pytest.approx(0.7, abs=0.02), name
    kept = torch.cat([model.get_submodule(n).weight[m].abs() for n, m in p.masks_.items()])
    dropped = torch.cat([model.get_submodule(n).weight[~m].abs() for n, m in p.masks_.items()])
    if scope == "global":
        assert kept.min() >= dropped.max()


def test_zeros_survive_retraining(data):
    p = MagnitudePruner(sparsity=0.8, retrain=Retrain(epochs=2)).fit(MODELS["mlp"](), data)
    assert p.sparsity_ >= 0.8 - 1e-3
    w = p.model_.features[1].weight
    assert torch.equal(w == 0, ~p.masks_["features.1"])


def test_sparse_file_is_honest_and_round_trips(tmp_path):
    model = MODELS["paper_cnn"]()
    p = MagnitudePruner(sparsity=0.9).fit(model, input_shape=SHAPE)
    n = save_sparse(p.model_, tmp_path / "m.npz")
    assert n == (tmp_path / "m.npz").stat().st_size == p.sparse_bytes_
    assert n < 0.35 * p.dense_bytes_
    state = load_sparse(tmp_path / "m.npz")
    for k, v in p.model_.state_dict().items():
        assert torch.equal(state[k], v), k
    dense = save_sparse(model, tmp_path / "dense.npz")
    assert dense > 0.8 * p.dense_bytes_  # no free lunch for a dense model
    assert sparsity(nn.Linear(3, 3)) == 0.0
