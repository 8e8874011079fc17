"""Structured pruning: the pruned model equals the original with the same channels zeroed."""

from __future__ import annotations

import copy

import pytest
import torch
from compress_models import MODELS, SHAPE
from torch import nn

from slimnas.compress import Retrain, StructuredPruner
from slimnas.compress._prune import agp_schedule, linear_schedule
from slimnas.errors import ConfigError, SlimnasError
from slimnas.measure import count_macs


def masked(original: nn.Module, removed: dict[str, list[int]]) -> nn.Module:
    """The original model with the removed output channels zeroed (weights, biases, BN affine)."""
    model = copy.deepcopy(original)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, idxs in removed.items():
            m, idx = modules[name], torch.tensor(idxs, dtype=torch.long)
            if isinstance(m, nn.RNNBase):
                rows = torch.cat([idx + g * m.hidden_size for g in range({"GRU": 3, "LSTM": 4}[m.mode])])
                for pname in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                    getattr(m, pname)[rows] = 0
                # a GRU unit with all-zero gates keeps h = z * h_prev = 0 from h0 = 0
            else:
                m.weight[idx] = 0
                if m.bias is not None:
                    m.bias[idx] = 0
    return model


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("importance", ["l1", "l2", "random"])
def test_pruned_equals_masked_original(name, importance):
    original = MODELS[name]()
    p = StructuredPruner(ratio=0.5, importance=importance).fit(original, input_shape=SHAPE)
    removed = p.removed_[0]
    assert removed, "nothing was pruned"
    x = torch.randn(16, *SHAPE)
    with torch.no_grad():
        expected = masked(original, removed)(x)
        got = p.model_(x)
        unmasked = original(x)
    assert got.shape == (16, 10)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, unmasked, atol=1e-4)  # pruning really changed something
    assert count_macs(p.model_, SHAPE) < count_macs(original, SHAPE)


def test_original_untouched_and_output_layer_kept():
    original = MODELS["residual_cnn"]()
    before = {k: v.clone() for k, v in original.state_dict().items()}
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=SHAPE)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    assert p.model_.classifier.out_features == 10
    assert p.layers_["features.0.conv"] == [8, 4]


def test_residual_coupled_channels_pruned_together():
    p = StructuredPruner(ratio=0.5).fit(MODELS["residual_cnn"](), input_shape=SHAPE)
    f = p.model_.features
    # block 1 adds its input (block 0's output) to its conv: both must keep the same channels
    assert f[0].conv.out_channels == f[1].conv.out_channels == f[0].shortcut[0].out_channels
    assert f[2].conv.out_channels == f[2].shortcut[0].out_channels == p.model_.classifier.in_features


def test_layer_ratios_and_ignored():
    original = MODELS["paper_cnn"]()
    p = StructuredPruner(ratio=0.0, layer_ratios={"2": 0.6}).fit(original, input_shape=SHAPE)
    assert p.layers_ == {"0": [25, 25], "2": [25, 10], "4": [25, 25], "7": [10, 10]}
    p = StructuredPruner(ratio=0.5, ignored=["2"]).fit(original, input_shape=SHAPE)
    assert p.layers_["2"] == [25, 25] and p.layers_["0"][1] < 25


def test_global_pruning_ranks_across_layers():
    p = StructuredPruner(ratio=0.4, global_pruning=True).fit(MODELS["paper_cnn"](), input_shape=SHAPE)
    kept = sum(after for name, (_, after) in p.layers_.items() if name != "7")
    assert kept == pytest.approx(0.6 * 75, abs=2)


def test_gru_hidden_units_pruned():
    p = StructuredPruner(ratio=0.5).fit(MODELS["gru"](), input_shape=SHAPE)
    assert p.model_.rnn.hidden_size == 6 and p.model_.rnn.weight_hh_l0.shape == (18, 6)
    assert p.left_alone_ == {}


class ProjectedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(1, 8, batch_first=True, proj_size=4)
        self.classifier = nn.Linear(4, 10)

    def forward(self, x):
        out, _ = self.rnn(x.transpose(1, 2))
        return self.classifier(out[:, -1])


def test_unsupported_recurrent_layer_left_alone_and_reported():
    model = ProjectedLSTM().eval()
    p = StructuredPruner(ratio=0.5).fit(model, input_shape=SHAPE)
    assert "proj_size" in p.left_alone_["rnn"] and p.model_.rnn.hidden_size == 8
    torch.testing.assert_close(p.model_(torch.ones(2, *SHAPE)), model(torch.ones(2, *SHAPE)))


class Misread(nn.Module):
    """Two branches concatenated, one reversed along the channels: torch-pruning maps the
    flattened features to the wrong channels."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(1, 8, 3, padding=1), nn.Conv1d(1, 8, 3, padding=1)
        self.classifier = nn.Linear(16 * 40, 10)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x).flip(1)], 1)
        return self.classifier(y.transpose(1, 2).reshape(x.shape[0], -1))


def test_untraceable_model_raises_one_clear_error():
    with pytest.raises(SlimnasError, match="torch-pruning") as e:
        StructuredPruner(ratio=0.5).fit(Misread(), input_shape=SHAPE)
    assert "prune.ignored" in str(e.value) and "\n" not in str(e.value)


def test_schedules():
    assert linear_schedule(0.5, 2) == [0.0, 0.25, 0.5]
    agp = agp_schedule(0.5, 4)
    assert agp[0] == 0 and agp[-1] == pytest.approx(0.5)
    assert agp[1] > linear_schedule(0.5, 4)[1]  # AGP prunes fastest early


def test_iterative_agp_with_retraining_and_distillation(data):
    p = StructuredPruner(ratio=0.5, steps=2, schedule="agp",
                         retrain=Retrain(epochs=1, distill=True)).fit(MODELS["mlp"](), data)
    assert len(p.removed_) == 2 and all(p.removed_)
    assert p.layers_["features.1"] == [32, 16]
    assert len(p.history_) == 2 and 0 <= p.history_[-1]["val_accuracy"] <= 1


def test_taylor_needs_data_and_uses_gradients(data):
    with pytest.raises(ConfigError, match="taylor"):
        StructuredPruner(ratio=0.5, importance="taylor").fit(MODELS["mlp"](), input_shape=SHAPE)
    t = StructuredPruner(ratio=0.5, importance="taylor").fit(MODELS["mlp"](), data)
    m = StructuredPruner(ratio=0.5, importance="l2").fit(MODELS["mlp"](), data)
    assert t.removed_[0]["features.1"] != m.removed_[0]["features.1"]


@pytest.mark.parametrize("kwargs, field", [
    ({"ratio": 1.0}, "prune.ratio"),
    ({"ratio": -0.1}, "prune.ratio"),
    ({"importance": "nope"}, "prune.importance"),
    ({"layer_ratios": {"missing": 0.5}}, "prune.layer_ratios"),
    ({"ignored": ["missing"]}, "prune.ignored"),
    ({"schedule": "cubic"}, "prune.schedule"),
])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        StructuredPruner(**kwargs).fit(MODELS["paper_cnn"](), input_shape=SHAPE)


def test_sklearn_contract():
    p = StructuredPruner(ratio=0.3, importance="l2")
    assert p.get_params()["ratio"] == 0.3
    assert p.set_params(ratio=0.2) is p and p.ratio == 0.2
    assert not hasattr(p, "model_")
    assert p.fit(MODELS["paper_cnn"](), input_shape=SHAPE) is p
    with pytest.raises(ConfigError):
        p.set_params(nonsense=1)


@pytest.mark.parametrize("ratio", [0.85, 0.9, 0.99])
def test_ratios_past_the_last_channel_keep_one_channel(ratio):
    # torch-pruning would leave these layers whole; a high ratio must still prune them
    m = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv1d(8, 8, 3, padding=1),
                            torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 40, 10))
    by_layer = StructuredPruner(ratio=0.0, layer_ratios={"0": ratio, "2": ratio}).fit(m, input_shape=(1, 40)).model_
    uniform = StructuredPruner(ratio=ratio).fit(m, input_shape=(1, 40)).model_
    for pruned in (by_layer, uniform):
        assert (pruned[0].out_channels, pruned[2].out_channels) == (1, 1)
