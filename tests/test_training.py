"""Gradient accumulation, mixed precision and the learning-rate warm-up in the training loop."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from slimnas.spaces import SearchSpace, TrainSpec
from slimnas.training import Callback, fit
from slimnas.training._trainer import WARMUP_START, make_scheduler


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


def _rates(spec: TrainSpec, steps: int, make=make_scheduler) -> list[float]:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=spec.lr)
    sched, out = make(opt, spec, steps), []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


def test_warmup_rises_linearly_then_anneals_and_none_is_the_plain_cosine():
    lr, steps = 0.1, 20
    warm = _rates(TrainSpec(lr=lr, warmup=0.25), steps)
    assert warm[0] == pytest.approx(lr * WARMUP_START)
    assert warm[:5] == pytest.approx([lr * (WARMUP_START + (1 - WARMUP_START) * k / 5) for k in range(5)])
    assert warm[5] == pytest.approx(lr) and all(a >= b for a, b in zip(warm[5:], warm[6:], strict=False))
    assert warm[-1] < lr * 0.05
    plain = _rates(TrainSpec(lr=lr), steps, make=lambda opt, _, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n))
    assert _rates(TrainSpec(lr=lr), steps) == plain  # no warm-up: the schedule of before, exactly
    held = _rates(TrainSpec(lr=lr, warmup=0.25, schedule="constant"), steps)
    assert held[0] == pytest.approx(lr * WARMUP_START) and held[5:] == pytest.approx([lr] * 15)
    assert _rates(TrainSpec(lr=lr, schedule="constant"), steps) == [lr] * steps


class _FirstEpoch(Callback):
    def __init__(self, model: nn.Module) -> None:
        self.model, self.weights = model, None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == 1:
            self.weights = [p.detach().clone() for p in self.model.parameters()]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fit_takes_its_first_step_at_the_warmup_rate(optimizer):
    x, y = _data(16)  # one batch: one optimizer step per epoch, the same first gradient both ways
    moved = {}
    for warmup in (0.0, 0.5):
        model = _net()
        start = [p.detach().clone() for p in model.parameters()]
        seen = _FirstEpoch(model)
        fit(model, x, y, TrainSpec(optimizer=optimizer, lr=0.05, batch_size=16, epochs=4, warmup=warmup), callbacks=[seen])
        moved[warmup] = torch.cat([(a - b).flatten() for a, b in zip(seen.weights, start, strict=True)])
    assert torch.allclose(moved[0.5], moved[0.0] * WARMUP_START, rtol=2e-2, atol=1e-7)  # float32 differences


def test_warmup_is_left_out_of_recipes_at_its_default():
    assert "warmup" not in TrainSpec().to_dict()
    assert TrainSpec(**TrainSpec(warmup=0.1).to_dict()) == TrainSpec(warmup=0.1)
