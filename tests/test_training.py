"""Gradient accumulation and mixed precision in the training loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from slimnas.spaces import SearchSpace, TrainSpec
from slimnas.training import fit


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))


def _data(n: int = 32):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 12, generator=g), torch.randint(0, 3, (n,), generator=g)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_accumulating_half_batches_is_one_full_batch_step(optimizer):
    x, y = _data(32)
    full, accumulated = _net(), _net()
    fit(full, x, y, TrainSpec(optimizer=optimizer, lr=0.1, batch_size=32, epochs=1, schedule="constant"))
    fit(accumulated, x, y, TrainSpec(optimizer=optimizer, lr=0.1, batch_size=16, accumulate=2, epochs=1,
                                     schedule="constant"))
    for a, b in zip(full.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    plain = _net()  # two steps of half batches differ: the test can tell them apart
    fit(plain, x, y, TrainSpec(optimizer=optimizer, lr=0.1, batch_size=16, epochs=1, schedule="constant"))
    assert not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(full.parameters(), plain.parameters(), strict=True))


def test_uneven_last_group_weighs_samples_equally():
    x, y = _data(40)  # groups of 32 and 8: the second step's gradient is its 8 samples' mean
    full, accumulated = _net(), _net()
    fit(full, x, y, TrainSpec(optimizer="sgd", lr=0.1, batch_size=32, epochs=1, schedule="constant"))
    fit(accumulated, x, y, TrainSpec(optimizer="sgd", lr=0.1, batch_size=8, accumulate=4, epochs=1,
                                     schedule="constant"))
    for a, b in zip(full.parameters(), accumulated.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_mixed_precision_changes_nothing_on_the_cpu():
    x, y = _data(32)
    a, b = _net(), _net()
    fit(a, x, y, TrainSpec(batch_size=8, epochs=2))
    fit(b, x, y, TrainSpec(batch_size=8, epochs=2, amp=True))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_on_cuda_trains():
    x, y = _data(64)
    model = _net()
    start = copy.deepcopy(model)
    history = fit(model, x, y, TrainSpec(batch_size=16, accumulate=2, epochs=3, amp=True), device="cuda")
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"] + 1e-3
    assert any(not torch.equal(p.cpu(), q) for p, q in zip(model.parameters(), start.parameters(), strict=True))


def test_training_keys_in_the_config_and_recipes_read_as_before():
    space = SearchSpace.from_config({"family": "mlp"}, {"accumulate": 4, "amp": True})
    assert space.training["accumulate"].values == (4,) and space.training["amp"].values == (True,)
    assert "accumulate" not in TrainSpec().to_dict() and "amp" not in TrainSpec().to_dict()
    assert TrainSpec(accumulate=2).to_dict()["accumulate"] == 2
    from slimnas.errors import ConfigError

    with pytest.raises(ConfigError, match="training.accumulate"):
        SearchSpace.from_config({"family": "mlp"}, {"accumulate": 0})
