import json

import optuna
import pytest
import torch

from slimnas.models import CNNSpec, ConvLayer, MLPSpec, RNNSpec, build_model
from slimnas.spaces import SearchSpace, arch_from_dict
from slimnas.spaces._family import arch_to_dict
from slimnas.spaces._spec import Candidate

SPECS = [
    MLPSpec(widths=(32, 16), activation="gelu", dropout=0.1, batch_norm=True),
    CNNSpec(layers=(ConvLayer(8, 5, 2), ConvLayer(16, 3, 1, 2, "max"), ConvLayer(16, 3, 2)), residual=True, head="flatten"),
    RNNSpec(cell="lstm", hidden=16, n_layers=2, bidirectional=True),
]


@pytest.mark.parametrize("spec", SPECS)
def test_spec_json_round_trip_and_hashable(spec):
    again = arch_from_dict(json.loads(json.dumps(arch_to_dict(spec))))
    assert again == spec and hash(again) == hash(spec)


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("shape", [(1, 40), (1, 8, 8)])
def test_builder_output_shape(spec, shape):
    model = build_model(spec, shape, 7)
    assert model(torch.randn(3, *shape)).shape == (3, 7)


def test_sampling_respects_space_and_is_seeded():
    space = SearchSpace.from_config(
        {"family": "cnn", "cnn": {"n_layers": {"low": 2, "high": 3}, "channels": [4, 12], "kernel": [5],
                                  "residual": True}},
        {"lr": {"low": 1e-3, "high": 1e-2, "log": True}},
    )

    def draws(seed):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(10):
            t = study.ask()
            c = space.sample(t)
            study.tell(t, 0.0)
            out.append(c)
        return out

    a, b = draws(1), draws(1)
    assert a == b and a != draws(2)
    for c in a:
        assert 2 <= len(c.arch.layers) <= 3 and c.arch.residual
        assert {layer.channels for layer in c.arch.layers} <= {4, 12}
        assert all(layer.kernel == 5 for layer in c.arch.layers)
        assert 1e-3 <= c.train.lr <= 1e-2
        assert Candidate.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("lr", [{"low": 0.01, "high": 0.05, "log": True}, {"low": 0.1, "high": 0.3},
                                {"low": 1e-4, "high": 0.3, "log": True}])
def test_grid_points_of_a_range_stay_inside_it(lr, recwarn):
    space = SearchSpace.from_config({"family": "mlp", "mlp": {"n_layers": 1, "width": 8}}, {"lr": lr})
    points = space.grid()["train.lr"]
    assert points[0] == lr["low"] and points[-1] == lr["high"]  # exactly: exp(log(0.05)) is 0.05000000000000001
    assert all(lr["low"] <= p <= lr["high"] for p in points) and points == sorted(points)
    sampler = optuna.samplers.GridSampler(space.grid(), seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(len(points)):
        trial = study.ask()
        assert lr["low"] <= space.sample(trial, tie_layers=True).train.lr <= lr["high"]
        study.tell(trial, 0.0)
    assert not [w for w in recwarn if "out of range" in str(w.message)]


def test_grid_ties_layers_and_refuses_huge_spaces():
    space = SearchSpace.from_config({"family": "mlp", "mlp": {"n_layers": [1, 2], "width": [8, 16]}})
    assert space.grid() == {"mlp.n_layers": [1, 2], "mlp.width": [8, 16], "train.optimizer": ["adam", "adamw"],
                            "train.lr": pytest.approx([1e-3, (1e-3 * 3e-2) ** 0.5, 3e-2])}
    big = SearchSpace.from_config({"family": "cnn", "cnn": {"channels": list(range(1, 60)), "kernel": [1, 3, 5, 7, 9],
                                                           "activation": ["relu", "gelu", "silu", "tanh"]}})
    from slimnas.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy.name"):
        big.grid()
