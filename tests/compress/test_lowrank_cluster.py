"""Low-rank factorisation and weight clustering against their exact references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compress_models import MODELS, SHAPE
from torch import nn

from slimnas.compress import LowRankFactorizer, WeightClusterer
from slimnas.compress._cluster import kmeans_1d, pack_indices, unpack_indices
from slimnas.compress._lowrank import factorize_conv, factorize_linear, factorize_tucker2
from slimnas.errors import ConfigError
from slimnas.measure import count_params
from slimnas.models._layers import LowRank


@pytest.mark.parametrize("layer, x", [
    (nn.Linear(12, 7), torch.randn(5, 12)),
    (nn.Conv1d(4, 6, 3, stride=2, padding=1), torch.randn(3, 4, 20)),
    (nn.Conv2d(3, 5, 3, padding=1, dilation=1), torch.randn(2, 3, 9, 9)),
])
def test_full_rank_factorisation_reproduces_the_layer(layer, x):
    fact = factorize_linear if isinstance(layer, nn.Linear) else factorize_conv
    for f in (fact, factorize_tucker2) if not isinstance(layer, nn.Linear) else (fact,):
        with torch.no_grad():
            torch.testing.assert_close(f(layer, ratio=1.0)(x), layer(x), atol=1e-5, rtol=1e-4)
            assert not torch.allclose(f(layer, ratio=0.3)(x), layer(x), atol=1e-3)


@pytest.mark.parametrize("name", ["residual_cnn", "mlp", "paper_cnn"])
@pytest.mark.parametrize("method", ["svd", "tucker2"])
def test_full_rank_model_unchanged(name, method):
    model = MODELS[name]()
    f = LowRankFactorizer(rank_ratio=1.0, conv_method=method, only_if_smaller=False).fit(model, input_shape=SHAPE)
    assert f.ranks_ and any(isinstance(m, LowRank) for m in f.model_.modules())
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(f.model_(x), model(x), atol=1e-4, rtol=1e-4)


def test_rank_by_ratio_and_by_energy():
    layer = nn.Linear(40, 40)
    with torch.no_grad():  # a rank-3 weight: 3 singular values carry all the energy
        layer.weight.copy_(torch.randn(40, 3) @ torch.randn(3, 40))
    model = nn.Sequential(layer)
    assert LowRankFactorizer(rank_ratio=0.25).fit(model, input_shape=(40,)).ranks_ == {"0": 10}
    f = LowRankFactorizer(energy=0.999).fit(model, input_shape=(40,))
    assert f.ranks_ == {"0": 3}
    x = torch.randn(4, 40)
    with torch.no_grad():
        torch.testing.assert_close(f.model_(x), model(x), atol=1e-3, rtol=1e-3)
    assert count_params(f.model_) < count_params(model)


def test_factors_that_would_grow_are_skipped():
    f = LowRankFactorizer(rank_ratio=0.9).fit(nn.Sequential(nn.Linear(10, 10)), input_shape=(10,))
    assert f.ranks_ == {} and "0" in f.skipped_


def test_lowrank_bad_ratio():
    with pytest.raises(ConfigError, match="lowrank.rank_ratio"):
        LowRankFactorizer(rank_ratio=0.0).fit(nn.Sequential(nn.Linear(4, 4)), input_shape=(4,))


@pytest.mark.parametrize("name", ["residual_cnn", "mlp", "gru"])
def test_clustering_with_as_many_clusters_as_distinct_weights_is_unchanged(name):
    model = MODELS[name]()
    with torch.no_grad():  # weights on a grid of 6 values per layer
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                m.weight.copy_(torch.round(torch.clamp(m.weight, -0.25, 0.25) * 10) / 10)
    c = WeightClusterer(n_clusters=6).fit(model, input_shape=SHAPE)
    for name_, m in c.model_.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            assert torch.equal(m.weight, model.get_submodule(name_).weight)
    x = torch.randn(4, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(c.model_(x), model(x))


def test_clustering_shares_values_and_counts_bytes():
    model = MODELS["paper_cnn"]()
    c = WeightClusterer(n_clusters=4).fit(model, input_shape=SHAPE)
    for m in c.model_.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            assert len(torch.unique(m.weight)) <= 4
    n_weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d)))
    n_bias = sum(m.bias.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d)))
    expected = 4 * 4 * 4 + 4 * n_bias + sum(-(-m.weight.numel() * 2 // 8) for m in model.modules()
                                             if isinstance(m, (nn.Linear, nn.Conv1d)))
    assert c.encoded_bytes_ == expected
    assert c.encoded_bytes_ < 0.2 * c.dense_bytes_ and c.dense_bytes_ == 4 * (n_weights + n_bias)


def test_cluster_retraining_keeps_sharing(data):
    c = WeightClusterer(n_clusters=8, retrain=__import__("slimnas.compress", fromlist=["Retrain"]).Retrain(epochs=1))
    c.fit(MODELS["mlp"](), data)
    assert len(torch.unique(c.model_.features[1].weight)) <= 8


def test_index_packing_round_trip():
    idx = np.random.default_rng(0).integers(0, 13, size=101)
    payload = pack_indices(idx, 13)
    assert len(payload) == -(-101 * 4 // 8)
    assert np.array_equal(unpack_indices(payload, 13, 101), idx)
    codebook, labels = kmeans_1d(np.array([0.0, 0.0, 1.0, 5.0]), 8)
    assert list(codebook) == [0.0, 1.0, 5.0] and list(labels) == [0, 0, 1, 2]
